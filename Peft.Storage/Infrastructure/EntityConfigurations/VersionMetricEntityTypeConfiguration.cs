using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class VersionMetricEntityTypeConfiguration : IEntityTypeConfiguration<VersionMetric>
{
    public void Configure(EntityTypeBuilder<VersionMetric> builder)
    {
        builder.ToTable("VersionMetrics");
        builder.Property(m => m.Name).HasMaxLength(100);
        builder.HasIndex(m => new { m.VersionId, m.Name }).IsUnique();
        builder.HasIndex(m => new { m.Name, m.Value });
    }
}

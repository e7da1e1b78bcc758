using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class DatasetEntityTypeConfiguration : IEntityTypeConfiguration<Dataset>
{
    public void Configure(EntityTypeBuilder<Dataset> builder)
    {
        builder.ToTable("Datasets");
        builder.Property(d => d.Name).HasMaxLength(Limits.NameLength);
        builder.HasIndex(d => d.Name).IsUnique();
        builder.Property(d => d.FileName).HasMaxLength(255);
        builder.Property(d => d.Format).HasMaxLength(40);
        builder.Property(d => d.Sha256).HasMaxLength(64).IsFixedLength();
        builder.HasIndex(d => d.Sha256);
        builder.Property(d => d.SourcePath).HasMaxLength(1024);
        builder.Property(d => d.CreatedBy).HasMaxLength(Limits.NameLength);
    }
}

using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class AdapterFileEntityTypeConfiguration : IEntityTypeConfiguration<AdapterFile>
{
    public void Configure(EntityTypeBuilder<AdapterFile> builder)
    {
        builder.ToTable("AdapterFiles");
        builder.Property(f => f.FileName).HasMaxLength(255);
        builder.Property(f => f.Sha256).HasMaxLength(64).IsFixedLength();
        builder.HasIndex(f => new { f.VersionId, f.FileName }).IsUnique();
        // The garbage collector asks "is this blob referenced?".
        builder.HasIndex(f => f.Sha256);
    }
}

using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class AdapterVersionEntityTypeConfiguration : IEntityTypeConfiguration<AdapterVersion>
{
    public void Configure(EntityTypeBuilder<AdapterVersion> builder)
    {
        builder.ToTable("AdapterVersions");
        // The unique (adapter, number) pair is the last line of defence for gapless, never-reused numbers.
        builder.HasIndex(v => new { v.AdapterId, v.Number }).IsUnique();
        builder.HasIndex(v => v.State);
        builder.Property(v => v.State).HasConversion<string>().HasMaxLength(16);
        builder.Property(v => v.PeftType).HasMaxLength(40);
        builder.Property(v => v.TaskType).HasMaxLength(40);
        builder.Property(v => v.ContentSha256).HasMaxLength(64).IsFixedLength();
        builder.Property(v => v.CreatedBy).HasMaxLength(Limits.NameLength);
        builder.Property(v => v.DeletedBy).HasMaxLength(Limits.NameLength);
        builder.HasOne(v => v.SourceDataset).WithMany().HasForeignKey(v => v.SourceDatasetId).OnDelete(DeleteBehavior.Restrict);
        builder.HasOne(v => v.ParentVersion).WithMany().HasForeignKey(v => v.ParentVersionId).OnDelete(DeleteBehavior.Restrict);
        builder.HasMany(v => v.Files).WithOne().HasForeignKey(f => f.VersionId).OnDelete(DeleteBehavior.Cascade);
        builder.HasMany(v => v.Metrics).WithOne().HasForeignKey(m => m.VersionId).OnDelete(DeleteBehavior.Cascade);
    }
}

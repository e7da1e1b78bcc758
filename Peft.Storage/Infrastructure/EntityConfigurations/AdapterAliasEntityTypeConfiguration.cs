using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class AdapterAliasEntityTypeConfiguration : IEntityTypeConfiguration<AdapterAlias>
{
    public void Configure(EntityTypeBuilder<AdapterAlias> builder)
    {
        builder.ToTable("AdapterAliases");
        builder.Property(a => a.Name).HasMaxLength(Limits.NameLength);
        builder.HasIndex(a => new { a.AdapterId, a.Name }).IsUnique();
        builder.Property(a => a.UpdatedBy).HasMaxLength(Limits.NameLength);
        // A version an alias points at cannot be removed (soft delete is refused too).
        builder.HasOne(a => a.Version).WithMany().HasForeignKey(a => a.VersionId).OnDelete(DeleteBehavior.Restrict);
    }
}

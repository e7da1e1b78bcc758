using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class AliasMoveEntityTypeConfiguration : IEntityTypeConfiguration<AliasMove>
{
    public void Configure(EntityTypeBuilder<AliasMove> builder)
    {
        builder.ToTable("AliasMoves");
        builder.Property(m => m.AliasName).HasMaxLength(Limits.NameLength);
        builder.Property(m => m.MovedBy).HasMaxLength(Limits.NameLength);
        builder.HasIndex(m => new { m.AdapterId, m.AliasName, m.Id });
        builder.HasOne<Adapter>().WithMany().HasForeignKey(m => m.AdapterId).OnDelete(DeleteBehavior.Restrict);
    }
}

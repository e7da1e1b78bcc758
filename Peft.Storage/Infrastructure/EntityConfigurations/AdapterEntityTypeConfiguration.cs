using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class AdapterEntityTypeConfiguration : IEntityTypeConfiguration<Adapter>
{
    public void Configure(EntityTypeBuilder<Adapter> builder)
    {
        builder.ToTable("Adapters");
        builder.Property(a => a.Name).HasMaxLength(Limits.NameLength);
        builder.HasIndex(a => a.Name).IsUnique();
        builder.Property(a => a.TaskType).HasMaxLength(40);
        builder.Property(a => a.Method).HasMaxLength(40);
        builder.HasIndex(a => a.Method);
        builder.Property(a => a.CreatedBy).HasMaxLength(Limits.NameLength);
        // A primitive collection: a JSON array on SQLite, text[] on PostgreSQL; both filter with Contains.
        builder.PrimitiveCollection(a => a.Tags);
        builder.HasOne(a => a.BaseModel).WithMany().HasForeignKey(a => a.BaseModelId).OnDelete(DeleteBehavior.Restrict);
        builder.HasMany(a => a.Versions).WithOne(v => v.Adapter).HasForeignKey(v => v.AdapterId).OnDelete(DeleteBehavior.Restrict);
        builder.HasMany(a => a.Aliases).WithOne().HasForeignKey(al => al.AdapterId).OnDelete(DeleteBehavior.Cascade);
    }
}

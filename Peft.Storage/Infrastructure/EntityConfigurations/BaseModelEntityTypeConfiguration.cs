using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class BaseModelEntityTypeConfiguration : IEntityTypeConfiguration<BaseModel>
{
    public void Configure(EntityTypeBuilder<BaseModel> builder)
    {
        builder.ToTable("BaseModels");
        builder.Property(b => b.Name).HasMaxLength(Limits.NameLength);
        builder.HasIndex(b => b.Name).IsUnique();
        builder.Property(b => b.Folder).HasMaxLength(1024);
        builder.Property(b => b.Architecture).HasMaxLength(200);
        builder.Property(b => b.ModelType).HasMaxLength(100);
        builder.Property(b => b.DType).HasMaxLength(16);
        builder.Property(b => b.ContentSha256).HasMaxLength(64).IsFixedLength();
        builder.Property(b => b.CreatedBy).HasMaxLength(Limits.NameLength);
    }
}

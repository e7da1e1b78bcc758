using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class UserEntityTypeConfiguration : IEntityTypeConfiguration<User>
{
    public void Configure(EntityTypeBuilder<User> builder)
    {
        builder.ToTable("Users");
        builder.Property(u => u.Name).HasMaxLength(Limits.NameLength);
        builder.HasIndex(u => u.Name).IsUnique();
        builder.Property(u => u.DisplayName).HasMaxLength(200);
        builder.Property(u => u.Role).HasMaxLength(20);
        builder.Property(u => u.PasswordHash).HasMaxLength(200);
        builder.HasMany(u => u.ApiKeys).WithOne(k => k.User).HasForeignKey(k => k.UserId).OnDelete(DeleteBehavior.Cascade);
    }
}

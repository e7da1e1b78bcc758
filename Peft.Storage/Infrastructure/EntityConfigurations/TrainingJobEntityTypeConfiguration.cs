using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure.EntityConfigurations;

internal sealed class TrainingJobEntityTypeConfiguration : IEntityTypeConfiguration<TrainingJob>
{
    public void Configure(EntityTypeBuilder<TrainingJob> builder)
    {
        builder.ToTable("TrainingJobs");
        builder.Property(j => j.State).HasConversion<string>().HasMaxLength(16);
        builder.HasIndex(j => new { j.State, j.CreatedAt });
        builder.Property(j => j.SubmittedBy).HasMaxLength(Limits.NameLength);
        builder.Property(j => j.AdapterName).HasMaxLength(Limits.NameLength);
        builder.Property(j => j.Method).HasMaxLength(40);
        builder.Property(j => j.Queue).HasMaxLength(20);
        builder.Property(j => j.DatasetSha256).HasMaxLength(64).IsFixedLength();
        builder.Property(j => j.LeaseOwner).HasMaxLength(200);
        builder.Property(j => j.LastCheckpoint).HasMaxLength(1024);
        builder.Property(j => j.HangfireJobId).HasMaxLength(64);
        builder.HasOne(j => j.BaseModel).WithMany().HasForeignKey(j => j.BaseModelId).OnDelete(DeleteBehavior.Restrict);
        builder.HasOne(j => j.Dataset).WithMany().HasForeignKey(j => j.DatasetId).OnDelete(DeleteBehavior.Restrict);
        builder.HasOne(j => j.ResultVersion).WithMany().HasForeignKey(j => j.ResultVersionId).OnDelete(DeleteBehavior.Restrict);
        builder.HasOne(j => j.ParentVersion).WithMany().HasForeignKey(j => j.ParentVersionId).OnDelete(DeleteBehavior.Restrict);
        // At most one job ever owns a version (a re-delivered registration cannot attach a second one).
        builder.HasIndex(j => j.ResultVersionId).IsUnique();
    }
}

internal sealed class JobEventEntityTypeConfiguration : IEntityTypeConfiguration<JobEvent>
{
    public void Configure(EntityTypeBuilder<JobEvent> builder)
    {
        builder.ToTable("JobEvents");
        builder.HasIndex(e => new { e.JobId, e.Seq }).IsUnique();
        builder.Property(e => e.Type).HasMaxLength(20);
        builder.HasOne<TrainingJob>().WithMany().HasForeignKey(e => e.JobId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class JobLeaseEntityTypeConfiguration : IEntityTypeConfiguration<JobLease>
{
    public void Configure(EntityTypeBuilder<JobLease> builder)
    {
        builder.ToTable("JobLeases");
        builder.HasIndex(l => new { l.JobId, l.Token }).IsUnique();
        builder.Property(l => l.Owner).HasMaxLength(200);
        builder.Property(l => l.Outcome).HasMaxLength(20);
        builder.HasOne<TrainingJob>().WithMany().HasForeignKey(l => l.JobId).OnDelete(DeleteBehavior.Cascade);
    }
}

using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using Peft.Storage.Model;

namespace Peft.Storage.Infrastructure;

/// <summary>
/// The hub's database: catalog entities now, jobs later. Each entity's mapping is one
/// <see cref="IEntityTypeConfiguration{TEntity}"/> in <c>EntityConfigurations/</c>, picked up by assembly scan, so a
/// new entity is one class plus one configuration plus a migration.
/// </summary>
public class CatalogDbContext : DbContext
{
    public CatalogDbContext(DbContextOptions<CatalogDbContext> options) : base(options) { }

    /// <summary>For provider-specific subclasses (their own migrations).</summary>
    protected CatalogDbContext(DbContextOptions options) : base(options) { }

    public DbSet<BaseModel> BaseModels => Set<BaseModel>();
    public DbSet<Dataset> Datasets => Set<Dataset>();
    public DbSet<Adapter> Adapters => Set<Adapter>();
    public DbSet<AdapterVersion> AdapterVersions => Set<AdapterVersion>();
    public DbSet<AdapterFile> AdapterFiles => Set<AdapterFile>();
    public DbSet<VersionMetric> VersionMetrics => Set<VersionMetric>();
    public DbSet<AdapterAlias> AdapterAliases => Set<AdapterAlias>();
    public DbSet<AliasMove> AliasMoves => Set<AliasMove>();
    public DbSet<User> Users => Set<User>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<TrainingJob> TrainingJobs => Set<TrainingJob>();
    public DbSet<JobEvent> JobEvents => Set<JobEvent>();
    public DbSet<JobLease> JobLeases => Set<JobLease>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) =>
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(CatalogDbContext).Assembly);

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        // SQLite has no timestamp type; stored as text it cannot be ordered or compared. Ticks+offset as an integer can.
        if (Database.IsSqlite())
            configurationBuilder.Properties<DateTimeOffset>().HaveConversion<DateTimeOffsetToBinaryConverter>();
    }

    public override int SaveChanges(bool acceptAllChangesOnSuccess)
    {
        GuardAppendOnly();
        return base.SaveChanges(acceptAllChangesOnSuccess);
    }

    public override Task<int> SaveChangesAsync(bool acceptAllChangesOnSuccess, CancellationToken cancellationToken = default)
    {
        GuardAppendOnly();
        return base.SaveChangesAsync(acceptAllChangesOnSuccess, cancellationToken);
    }

    /// <summary>The alias history is an audit trail: rows are added, never changed or removed.</summary>
    private void GuardAppendOnly()
    {
        foreach (var e in ChangeTracker.Entries<AliasMove>())
            if (e.State is EntityState.Modified or EntityState.Deleted)
                throw new InvalidOperationException($"Alias history is append-only; refusing to {e.State} move {e.Entity.Id}.");
    }
}

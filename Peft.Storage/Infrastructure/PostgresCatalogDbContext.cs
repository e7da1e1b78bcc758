using Microsoft.EntityFrameworkCore;

namespace Peft.Storage.Infrastructure;

/// <summary>
/// The catalog on PostgreSQL. Same model as <see cref="CatalogDbContext"/>; a separate type only so EF keeps a
/// separate migration set (<c>Infrastructure/PostgresMigrations</c>), since SQLite's migrations carry SQLite column types.
/// </summary>
public sealed class PostgresCatalogDbContext(DbContextOptions<PostgresCatalogDbContext> options) : CatalogDbContext(options);

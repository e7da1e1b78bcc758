using Peft.Web.Extensions;
using Peft.Web.Jobs;

if (TrainChild.TryRun(args) is int exitCode) return exitCode;

var builder = WebApplication.CreateBuilder(args);
// MudBlazor's files come from the NuGet cache through the static-web-assets manifest unless the app is published.
if (!builder.Environment.IsProduction()) builder.WebHost.UseStaticWebAssets();
// --role worker: a Hangfire server for training jobs only (no pages, no serving, no REST).
bool worker = JobsExtensions.IsWorker(builder.Configuration);
builder.AddHubServices();
if (!worker) builder.AddServing();
builder.AddJobs();

var app = builder.Build();
app.UseHub();
app.MapHubApis();
if (!worker) app.MapServing();
app.Run();
return 0;

/// <summary>Visible to WebApplicationFactory in the tests.</summary>
public partial class Program;

using Peft.Web.Extensions;

var builder = WebApplication.CreateBuilder(args);
// MudBlazor's files come from the NuGet cache through the static-web-assets manifest unless the app is published.
if (!builder.Environment.IsProduction()) builder.WebHost.UseStaticWebAssets();
builder.AddHubServices();
builder.AddServing();

var app = builder.Build();
app.UseHub();
app.MapHubApis();
app.MapServing();
app.Run();

/// <summary>Visible to WebApplicationFactory in the tests.</summary>
public partial class Program;

using Peft.Web.Extensions;

var builder = WebApplication.CreateBuilder(args);
builder.AddHubServices();
builder.AddServing();

var app = builder.Build();
app.UseHub();
app.MapHubApis();
app.MapServing();
app.Run();

/// <summary>Visible to WebApplicationFactory in the tests.</summary>
public partial class Program;

using Peft.Web.Extensions;

var builder = WebApplication.CreateBuilder(args);
builder.AddHubServices();

var app = builder.Build();
app.UseHub();
app.MapHubApis();
app.Run();

/// <summary>Visible to WebApplicationFactory in the tests.</summary>
public partial class Program;

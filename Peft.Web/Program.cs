using Peft.Web.Extensions;

var builder = WebApplication.CreateBuilder(args);
builder.AddServing();
var app = builder.Build();

app.MapGet("/", () => "Hello World!");
app.MapServing();

app.Run();

using System.Text.RegularExpressions;
using Npgsql;
using Peft.Tests.Data;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Peft.Tests.Ops;

/// <summary>
/// No Docker engine runs here, so docker-compose.yml and the Dockerfile are checked against the app: every environment
/// key binds to a real setting with a value that converts, commands are roles the app knows, connection strings reach
/// the compose PostgreSQL with its credentials, and every process shares the data volume its paths point into.
/// (.ci/run publishes and starts the app the way the Dockerfile does.)
/// </summary>
public sealed class ContainerFilesTests
{
    private static readonly string[] AppServices = ["web", "worker", "inference"];

    private static Dictionary<string, object> Compose()
    {
        using var reader = new StringReader(File.ReadAllText(RepoFiles.Path("docker-compose.yml")));
        return new DeserializerBuilder().Build().Deserialize<Dictionary<string, object>>(new MergingParser(new Parser(reader)));
    }

    private static Dictionary<string, object> Map(object? node) =>
        ((Dictionary<object, object>)node!).ToDictionary(kv => (string)kv.Key, kv => kv.Value);

    private static List<string> List(object? node) => node is null ? [] : ((List<object>)node).Select(x => (string)x).ToList();

    /// <summary>Compose's <c>${NAME:-default}</c> with nothing set in the environment.</summary>
    private static string Interpolate(string value) => Regex.Replace(value, @"\$\{[A-Z_]+(?::-([^}]*))?\}", m => m.Groups[1].Value);

    /// <summary>Environment variable names become configuration keys as .NET reads them (<c>__</c> → <c>:</c>).</summary>
    private static Dictionary<string, string?> Settings(Dictionary<string, object> env) =>
        env.Where(kv => !kv.Key.StartsWith("ASPNETCORE_", StringComparison.Ordinal) && !kv.Key.StartsWith("DOTNET_", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key.Replace("__", ":"), kv => (string?)Interpolate((string)kv.Value));

    [Fact]
    public void Every_service_has_an_image_known_commands_real_settings_and_the_shared_volume()
    {
        var compose = Compose();
        var services = Map(compose["services"]);
        Assert.Equal(["inference", "postgres", "web", "worker"], services.Keys.Order());
        var volumes = Map(compose["volumes"]).Keys.ToHashSet();

        var postgres = Map(services["postgres"]);
        Assert.StartsWith("postgres:", (string)postgres["image"]);
        var pgEnv = Map(postgres["environment"]).ToDictionary(kv => kv.Key, kv => Interpolate((string)kv.Value));
        Assert.Contains(List(postgres["volumes"]), v => v.EndsWith(":/var/lib/postgresql/data", StringComparison.Ordinal));

        var web = Map(services["web"]);
        var build = Map(web["build"]);
        Assert.True(File.Exists(RepoFiles.Path((string)build["context"], (string)build["dockerfile"])));
        string image = (string)web["image"];

        foreach (var name in AppServices)
        {
            var service = Map(services[name]);
            Assert.Equal(image, (string)service["image"]);   // one image, built by web
            var command = List(service.GetValueOrDefault("command"));
            Assert.True(command.Count == 0 || command.SequenceEqual(["--role", "worker"]), $"{name}: command {string.Join(' ', command)}");

            var settings = Settings(Map(service["environment"]));
            foreach (var key in settings.Keys) Assert.True(ConfigKeys.Problem(key) is null, $"{name}: {ConfigKeys.Problem(key)}");
            ConfigKeys.Bind(settings);   // values convert (enums, booleans, numbers)

            Assert.Equal("Postgres", settings["Hub:DatabaseProvider"]);
            Assert.Equal("Postgres", settings["Jobs:Storage"]);
            foreach (var cs in new[] { "ConnectionStrings:Catalog", "ConnectionStrings:Hangfire" })
            {
                var pg = new NpgsqlConnectionStringBuilder(settings[cs]);
                Assert.True(services.ContainsKey(pg.Host!), $"{name}: {cs} host {pg.Host} is no service");
                Assert.Equal(pgEnv["POSTGRES_DB"], pg.Database);
                Assert.Equal(pgEnv["POSTGRES_USER"], pg.Username);
                Assert.Equal(pgEnv["POSTGRES_PASSWORD"], pg.Password);
            }
            Assert.Contains("postgres", Map(service["depends_on"]).Keys);

            // Adapters, blobs and the catalog's files live on the one shared volume, mounted where the settings point.
            var mounts = List(service["volumes"]).Select(v => v.Split(':')).ToList();
            Assert.All(mounts, m => Assert.Contains(m[0], volumes));
            foreach (var path in new[] { settings["Hub:DataDir"]!, settings["Serving:AdaptersPath"]! })
                Assert.Contains(mounts, m => m[0] == "peft-data" && path.StartsWith(m[1] + "/", StringComparison.Ordinal));
        }

        // Who trains: only the worker runs a Hangfire server; web and the replicas only enqueue.
        Assert.Equal("false", Settings(Map(web["environment"]))["Jobs:RunServer"]);
        Assert.Equal("false", Settings(Map(Map(services["inference"])["environment"]))["Jobs:RunServer"]);
        Assert.Equal(["--role", "worker"], List(Map(services["worker"])["command"]));
        Assert.True(int.Parse((string)Map(Map(services["inference"])["deploy"])["replicas"]) >= 2);
    }

    [Fact]
    public void The_dockerfile_builds_with_the_sdk_runs_on_aspnet_and_switches_libtorch_by_the_cuda_argument()
    {
        string dockerfile = File.ReadAllText(RepoFiles.Path("Dockerfile"));
        var stages = Regex.Matches(dockerfile, @"^FROM (\S+)", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(2, stages.Count);
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:10.0", stages[0]);
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:10.0", stages[1]);
        Assert.Matches(@"(?m)^ARG CUDA=false$", dockerfile);

        // The switch is the TorchBackend property that Directory.Build.targets reads (cpu | cuda).
        Assert.Matches(@"dotnet publish Peft.Web -c Release -o /app -p:TorchBackend=\$\(\[ ""\$CUDA"" = ""true"" \] && echo cuda \|\| echo cpu\)", dockerfile);
        string targets = File.ReadAllText(RepoFiles.Path("Directory.Build.targets"));
        Assert.Contains("'$(TorchBackend)' == 'cuda'", targets);
        Assert.Contains("<PackageReference Include=\"TorchSharp-cuda-linux\" />", targets);
        Assert.Contains("<PackageVersion Include=\"TorchSharp-cuda-linux\"", File.ReadAllText(RepoFiles.Path("Directory.Packages.props")));

        Assert.Contains("ENTRYPOINT [\"dotnet\", \"Peft.Web.dll\"]", dockerfile);
        foreach (var folder in new[] { "models", "data" })
        {
            Assert.Contains($"COPY {folder} /app/{folder}", dockerfile);
            Assert.True(Directory.Exists(RepoFiles.Path(folder)));
        }
        // ENV lines: real settings, and the image's model and corpora folders are the ones it copies.
        var env = Regex.Matches(dockerfile, @"(?:ENV |\\\n\s+)([A-Za-z_]+)=(\S+)").ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        var settings = env.Where(kv => !kv.Key.StartsWith("ASPNETCORE_", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key.Replace("__", ":"), kv => (string?)kv.Value);
        Assert.True(settings.Count >= 6, string.Join(", ", settings.Keys));
        foreach (var key in settings.Keys) Assert.True(ConfigKeys.Problem(key) is null, ConfigKeys.Problem(key));
        ConfigKeys.Bind(settings);
        Assert.Equal("/app/models", settings["Hub:ModelsDir"]);
        Assert.Equal("/app/data", settings["Hub:CorporaDir"]);
        Assert.Equal("/app/models/peft-demo", settings["Serving:ModelPath"]);
        Assert.Equal("8080", env["ASPNETCORE_HTTP_PORTS"]);
    }
}

using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Web.Serving;
using TorchSharp;

namespace Peft.Tests.Web;

/// <summary>
/// The web host on a real loopback port, serving the bundled demo model with two LoRA adapters made for it here
/// (a: rank 4, b: rank 8, c: rank 4, random non-zero B so they change the answers) and one declaring another base.
/// </summary>
public sealed class ServingApiFixture : IDisposable
{
    public TempDir Adapters { get; } = new();
    private readonly List<IDisposable> _hosts = new();

    public ServingApiFixture()
    {
        string demo = DemoModelDir();
        WriteAdapter(demo, "a", 4, 11);
        WriteAdapter(demo, "b", 8, 12);
        WriteAdapter(demo, "c", 4, 14);
        WriteAdapter(demo, "other", 4, 13);
        var cfg = Path.Combine(Adapters.Path, "other", "1", "adapter_config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("peft-demo", "some-other-model"));
    }

    public static string DemoModelDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "models", "peft-demo"))) return Path.Combine(d.FullName, "models", "peft-demo");
        throw new DirectoryNotFoundException("models/peft-demo");
    }

    private void WriteAdapter(string demo, string name, int rank, long seed)
    {
        using var model = AutoModel.FromPretrained(demo);
        using var peft = PeftModel.Create(model, new LoraConfig { R = rank, LoraAlpha = 2 * rank }, seed: seed);
        using (torch.no_grad())
        using (var gen = new torch.Generator((ulong)seed))
            foreach (var t in peft.AdapterTensors(PeftModel.DefaultAdapterName))
                if (t.CheckpointKey.Contains("lora_B")) t.Parameter.copy_(torch.randn(t.Parameter.shape, generator: gen) * 0.05);
        peft.SavePretrained(Path.Combine(Adapters.Path, name, "1"));
    }

    private readonly TempDir _hubData = new();

    /// <summary>A started host with extra settings; its HttpClient talks to Kestrel over loopback.</summary>
    public (HttpClient Client, InferenceService Service) Start(params (string Key, string Value)[] settings)
    {
        var (client, service, _) = StartWithServices(settings);
        return (client, service);
    }

    /// <summary>As <see cref="Start"/>, with the host's services (the catalog, health checks).</summary>
    public (HttpClient Client, InferenceService Service, IServiceProvider Services) StartWithServices(params (string Key, string Value)[] settings)
    {
        var factory = new WebApplicationFactory<InferenceService>().WithWebHostBuilder(b =>
        {
            b.UseSetting("Serving:AdaptersPath", Adapters.Path);
            b.UseSetting("Serving:AllowAnonymous", "true");
            b.UseSetting("Hub:DataDir", _hubData.Sub(Guid.NewGuid().ToString("N")));
            foreach (var (k, v) in settings) b.UseSetting(k, v);
        });
        factory.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        factory.StartServer();
        _hosts.Add(factory);
        var address = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var client = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(3) };
        _hosts.Add(client);
        return (client, factory.Services.GetRequiredService<InferenceService>(), factory.Services);
    }

    public void Dispose()
    {
        foreach (var h in Enumerable.Reverse(_hosts)) h.Dispose();
        Adapters.Dispose();
        _hubData.Dispose();
    }
}

using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Tests.Serving;

/// <summary>
/// An adapter folder for the golden tiny Llama: a (rank 4) and b (rank 4) are PEFT's mixed-batch adapters, c is a
/// rank-8 adapter made here with non-zero B (so ranks differ within a batch), each as version 1.
/// </summary>
public sealed class ServingFixture : IDisposable
{
    public const string BaseCase = "llama_base";
    public const string MixedCase = "llama_lora_mixed_batch";

    public TempDir Dir { get; } = new();
    public string Root => Dir.Path;

    public ServingFixture()
    {
        CopyAdapter(Path.Combine(GoldenData.Dir(MixedCase), "adapter_a"), "a", 1);
        CopyAdapter(Path.Combine(GoldenData.Dir(MixedCase), "adapter_b"), "b", 1);
        WriteRank8("c", 1, seed: 7);
    }

    public void CopyAdapter(string from, string name, int version)
    {
        string to = Path.Combine(Root, name, version.ToString());
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), true);
    }

    public void WriteRank8(string name, int version, long seed)
    {
        using var model = AutoModel.FromPretrained(GoldenData.Dir(BaseCase));
        using var peft = PeftModel.Create(model, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = StringOrList.Of(["q_proj", "v_proj", "o_proj", "down_proj"]) }, seed: seed);
        using (torch.no_grad())
        using (var gen = new torch.Generator((ulong)seed))
            foreach (var t in peft.AdapterTensors(PeftModel.DefaultAdapterName))
                if (t.CheckpointKey.Contains("lora_B")) t.Parameter.copy_(torch.randn(t.Parameter.shape, generator: gen) * 0.3);
        peft.SavePretrained(Path.Combine(Root, name, version.ToString()));
    }

    public (ServingEngine Engine, AdapterCache Cache) Engine(ServingEngineOptions? options = null, AdapterCacheOptions? cacheOptions = null,
        ServingMetrics? metrics = null)
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir(BaseCase));
        var cache = new AdapterCache(new FolderAdapterSource(Root), cacheOptions ?? new AdapterCacheOptions { BaseModelName = BaseCase }, metrics);
        var engine = new ServingEngine(model, cache, options ?? new ServingEngineOptions { CaptureLogits = true }, metrics: metrics);
        return (engine, cache);
    }

    public void Dispose() => Dir.Dispose();
}

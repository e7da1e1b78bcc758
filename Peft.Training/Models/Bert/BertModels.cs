using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Bert;

/// <summary>
/// Shared root of the BERT/RoBERTa models: the encoder under <c>bert.*</c> / <c>roberta.*</c> (or at the top level
/// for the bare model) plus one task head. Head weights a checkpoint lacks are initialised (a classifier on a bare
/// pretrained encoder), and bare and prefixed checkpoints load into either layout, as in transformers.
/// </summary>
public abstract class BertFamilyModel : PretrainedModel
{
    private protected readonly BertMain Main;
    private readonly bool _bare;

    private protected BertFamilyModel(string name, ModelConfig config, TaskType task, bool withPooler, bool bare, Device device, ScalarType dtype)
        : base(name, config, task, device, dtype)
    {
        Typed = BertConfig.From(config);
        _bare = bare;
        Main = new BertMain(Typed, withPooler, device, dtype, Random);
        if (!bare) register_module(Typed.BasePrefix, Main);
        else
        {
            register_module("embeddings", Main.embeddings);
            register_module("encoder", Main.encoder);
            if (Main.pooler is not null) register_module("pooler", Main.pooler);
        }
    }

    public BertConfig Typed { get; }
    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => Main.embeddings.word_embeddings;

    private string Prefix => Typed.BasePrefix + ".";

    private bool IsEncoderWeight(string name) =>
        _bare ? name.StartsWith("embeddings.", StringComparison.Ordinal) || name.StartsWith("encoder.", StringComparison.Ordinal)
              : name.StartsWith(Prefix + "embeddings.", StringComparison.Ordinal) || name.StartsWith(Prefix + "encoder.", StringComparison.Ordinal);

    protected override string? AlternateCheckpointKey(string parameterName) =>
        _bare ? Prefix + parameterName
            : parameterName.StartsWith(Prefix, StringComparison.Ordinal) ? parameterName[Prefix.Length..] : null;

    /// <summary>Everything but the encoder proper (heads, pooler) may be missing and is then initialised.</summary>
    protected override bool IsOptionalInCheckpoint(string name) => !IsEncoderWeight(name) || base.IsOptionalInCheckpoint(name);

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = Main.Encode(args);
        return TaskHeads.Output(Head(encoded.Hidden), encoded);
    }

    /// <summary>The head on the last hidden state [batch, seq, hidden].</summary>
    private protected abstract Tensor Head(Tensor sequence);

    private protected Tensor Dropout(Tensor x) => SeededDropout.Apply(x, Typed.ClassifierDropout, training, Random);
}

/// <summary>
/// transformers' <c>BertModel</c>/<c>RobertaModel</c> (FEATURE_EXTRACTION): top-level <c>embeddings.*</c>,
/// <c>encoder.*</c>, <c>pooler.*</c>. There is no head, so <see cref="ModelOutput.Logits"/> is the last hidden state
/// [batch, seq, hidden] (the same values as <see cref="ModelOutput.LastHiddenState"/>), for callers that only read logits.
/// </summary>
public sealed class BertModel(ModelConfig config, Device device, ScalarType dtype)
    : BertFamilyModel(nameof(BertModel), config, TaskType.FeatureExtraction, withPooler: true, bare: true, device, dtype)
{
    private protected override Tensor Head(Tensor sequence) => sequence.alias();

    /// <summary>BERT's pooled output tanh(dense(first token)) [batch, hidden] of a last hidden state.</summary>
    public Tensor Pool(Tensor lastHiddenState) => Main.pooler!.forward(lastHiddenState);
}

/// <summary><c>BertForSequenceClassification</c>: pooler (first token) → dropout → <c>classifier</c>; logits [batch, labels].</summary>
public sealed class BertForSequenceClassification : BertFamilyModel
{
    private readonly LinearLayer _classifier;

    public BertForSequenceClassification(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(BertForSequenceClassification), config, TaskType.SequenceClassification, withPooler: true, bare: false, device, dtype)
    {
        _classifier = new LinearLayer(Typed.HiddenSize, Typed.NumLabels, true, device, dtype);
        register_module("classifier", _classifier);
    }

    private protected override Tensor Head(Tensor sequence) => _classifier.forward(Dropout(Main.pooler!.forward(sequence)));
}

/// <summary>
/// <c>RobertaForSequenceClassification</c> (no pooler): first token → dropout → <c>classifier.dense</c> → tanh →
/// dropout → <c>classifier.out_proj</c>; logits [batch, labels].
/// </summary>
public sealed class RobertaForSequenceClassification : BertFamilyModel
{
    private readonly RobertaClassificationHead _classifier;

    public RobertaForSequenceClassification(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(RobertaForSequenceClassification), config, TaskType.SequenceClassification, withPooler: false, bare: false, device, dtype)
    {
        _classifier = new RobertaClassificationHead(Typed, device, dtype);
        register_module("classifier", _classifier);
    }

    private protected override Tensor Head(Tensor sequence)
    {
        using var scope = torch.NewDisposeScope();
        var x = Dropout(sequence.select(1, 0));
        x = Dropout(_classifier.dense.forward(x).tanh());
        return _classifier.out_proj.forward(x).MoveToOuterDisposeScope();
    }
}

#pragma warning disable IDE1006 // field names are the HF state-dict names
internal sealed class RobertaClassificationHead : nn.Module
{
    public readonly LinearLayer dense, out_proj;

    public RobertaClassificationHead(BertConfig c, Device device, ScalarType dtype) : base(nameof(RobertaClassificationHead))
    {
        dense = new LinearLayer(c.HiddenSize, c.HiddenSize, true, device, dtype);
        out_proj = new LinearLayer(c.HiddenSize, c.NumLabels, true, device, dtype);
        RegisterComponents();
    }
}
#pragma warning restore IDE1006

/// <summary>
/// <c>BertForTokenClassification</c> / <c>RobertaForTokenClassification</c> (same layout, no pooler): dropout →
/// <c>classifier</c> on every token; logits [batch, seq, labels].
/// </summary>
public sealed class BertForTokenClassification : BertFamilyModel
{
    private readonly LinearLayer _classifier;

    public BertForTokenClassification(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(BertForTokenClassification), config, TaskType.TokenClassification, withPooler: false, bare: false, device, dtype)
    {
        _classifier = new LinearLayer(Typed.HiddenSize, Typed.NumLabels, true, device, dtype);
        register_module("classifier", _classifier);
    }

    private protected override Tensor Head(Tensor sequence) => _classifier.forward(Dropout(sequence));
}

/// <summary>
/// <c>BertForQuestionAnswering</c> / <c>RobertaForQuestionAnswering</c> (no pooler): <c>qa_outputs</c> on every token.
/// transformers splits its output into start_logits and end_logits [batch, seq]; here they stay together as
/// <see cref="ModelOutput.Logits"/> [batch, seq, 2]: start = <c>logits[..., 0]</c>, end = <c>logits[..., 1]</c>.
/// </summary>
public sealed class BertForQuestionAnswering : BertFamilyModel
{
    private readonly LinearLayer _qaOutputs;

    public BertForQuestionAnswering(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(BertForQuestionAnswering), config, TaskType.QuestionAnswering, withPooler: false, bare: false, device, dtype)
    {
        _qaOutputs = new LinearLayer(Typed.HiddenSize, 2, true, device, dtype);
        register_module("qa_outputs", _qaOutputs);
    }

    private protected override Tensor Head(Tensor sequence) => _qaOutputs.forward(sequence);
}

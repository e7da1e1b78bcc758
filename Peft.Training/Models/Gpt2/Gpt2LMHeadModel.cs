using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Gpt2;

/// <summary>transformers' <c>GPT2LMHeadModel</c>: <c>transformer.*</c> plus <c>lm_head</c> tied to <c>transformer.wte</c>.</summary>
public sealed class Gpt2LMHeadModel : PretrainedModel
{
#pragma warning disable IDE1006
    private readonly Gpt2Backbone transformer;
    private readonly LinearLayer lm_head;
#pragma warning restore IDE1006

    public Gpt2Config Typed { get; }

    public Gpt2LMHeadModel(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(Gpt2LMHeadModel), config, TaskType.CausalLM, device, dtype)
    {
        Typed = Gpt2Config.From(config);
        transformer = new Gpt2Backbone(Typed, Dropout, device, dtype);
        lm_head = new LinearLayer(transformer.wte.weight);
        RegisterComponents();
    }

    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => transformer.wte;
    public override IReadOnlyCollection<string> TiedParameterNames => ["lm_head.weight"];

    public override void InitWeights(long seed)
    {
        base.InitWeights(seed);
        Gpt2Backbone.ScaleResidualInit(this, Typed, seed);
    }

    /// <summary>The hub's gpt2 checkpoints are bare <c>GPT2Model</c>s (<c>h.0...</c>, no <c>transformer.</c> prefix).</summary>
    protected override string? AlternateCheckpointKey(string parameterName) => Gpt2Backbone.BareKey(parameterName);

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = transformer.Encode(args, RunDecoderLayer);
        return TaskHeads.Output(lm_head.forward(TaskHeads.ForLogits(encoded.Hidden, args)), encoded);
    }
}

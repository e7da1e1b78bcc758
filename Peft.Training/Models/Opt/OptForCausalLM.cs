using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Opt;

/// <summary>transformers' <c>OPTForCausalLM</c>: <c>model.decoder.*</c> and <c>lm_head</c> tied to the token embeddings.</summary>
public sealed class OptForCausalLM : PretrainedModel
{
#pragma warning disable IDE1006
    private readonly OptModel model;
    private readonly LinearLayer lm_head;
#pragma warning restore IDE1006

    public OptConfig Typed { get; }

    public OptForCausalLM(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(OptForCausalLM), config, TaskType.CausalLM, device, dtype)
    {
        Typed = OptConfig.From(config);
        model = new OptModel(Typed, device, dtype);
        lm_head = Typed.TieWordEmbeddings
            ? new LinearLayer(model.decoder.embed_tokens.weight)
            : new LinearLayer(Typed.WordEmbedProjDim, Typed.VocabSize, false, device, dtype);
        RegisterComponents();
    }

    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => model.decoder.embed_tokens;
    public override IReadOnlyCollection<string> TiedParameterNames => Typed.TieWordEmbeddings ? ["lm_head.weight"] : [];

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var d = model.decoder;
        var embeds = args.InputsEmbeds ?? d.embed_tokens.forward(args.InputIds ?? throw new ArgumentException("InputIds or InputsEmbeds is required"));
        long b = embeds.shape[0], s = embeds.shape[1];
        long past = args.Cache?.Length ?? 0;
        var mask = args.AttentionMask ?? torch.ones(b, past + s, ScalarType.Int64, embeds.device);
        // Positions come from the mask (padding-aware): cumsum(mask)·mask − 1, then the offset of 2.
        var positions = args.PositionIds
            ?? ((mask.cumsum(1, ScalarType.Int64) * mask - 1).narrow(1, past, s));
        if (d.project_in is not null) embeds = d.project_in.forward(embeds);
        var hidden = embeds + d.embed_positions.forward(positions + 2);
        var additive = AttentionOps.CausalMask(mask, b, s, past, hidden.dtype, hidden.device);
        var ctx = new OptContext(additive, args.Cache);
        var states = args.OutputHiddenStates ? new List<Tensor>() : null;
        foreach (var layer in d.layers)
        {
            states?.Add(hidden.alias());
            hidden = layer.forward(hidden, ctx);
        }
        if (d.final_layer_norm is not null) hidden = d.final_layer_norm.forward(hidden);
        if (d.project_out is not null) hidden = d.project_out.forward(hidden);
        states?.Add(hidden.alias());
        var logits = lm_head.forward(hidden).to(ScalarType.Float32);
        return new ModelOutput
        {
            Logits = logits.MoveToOuterDisposeScope(),
            LastHiddenState = hidden.MoveToOuterDisposeScope(),
            HiddenStates = states?.Select(t => t.MoveToOuterDisposeScope()).ToList(),
        };
    }
}

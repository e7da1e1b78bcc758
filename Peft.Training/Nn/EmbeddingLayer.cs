using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary><c>nn.Embedding</c> with HF parameter name <c>weight</c> [num_embeddings, dim]; a tuner may be attached.</summary>
public sealed class EmbeddingLayer : nn.Module<Tensor, Tensor>, IAdaptableLayer
{
    private readonly Parameter _weight;

    public long NumEmbeddings { get; }
    public long EmbeddingDim { get; }
    public long? PaddingIdx { get; }
    public ILayerTuner? Tuner { get; set; }
    public nn.Module AsModule => this;

    public EmbeddingLayer(long num, long dim, Device device, ScalarType dtype, long? paddingIdx = null) : base(nameof(EmbeddingLayer))
    {
        NumEmbeddings = num;
        EmbeddingDim = dim;
        PaddingIdx = paddingIdx;
        _weight = new Parameter(torch.empty([num, dim], dtype, device));
        register_parameter("weight", _weight);
    }

    public Parameter weight => _weight;

    public Tensor BaseForward(Tensor ids) => Lookup(_weight, ids);

    public override Tensor forward(Tensor ids) => Tuner is null ? BaseForward(ids) : Tuner.Forward(ids);

    /// <summary>Row lookup <c>table[ids]</c> for any id shape.</summary>
    public static Tensor Lookup(Tensor table, Tensor ids)
    {
        var flat = table.index_select(0, ids.reshape(-1));
        var shape = ids.shape.Append(table.shape[1]).ToArray();
        return flat.view(shape);
    }
}

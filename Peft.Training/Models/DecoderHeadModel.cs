using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models;

/// <summary>
/// A decoder family's backbone with a classification head instead of the LM head, as transformers'
/// <c>...ForSequenceClassification</c> (<c>score</c>, no bias, read at the last non-pad token; logits [batch, labels])
/// and <c>...ForTokenClassification</c> (dropout → <c>classifier</c> on every token; logits [batch, seq, labels]).
/// Families supply the backbone; the head (new when fine-tuning from a language-model checkpoint) lives here.
/// </summary>
public abstract class DecoderHeadModel : PretrainedModel
{
    private LinearLayer? _head;
    private int? _padTokenId;
    private double _dropout;

    private protected DecoderHeadModel(string family, ModelConfig config, TaskType task, Device device, ScalarType dtype)
        : base(family + (task == TaskType.SequenceClassification ? "ForSequenceClassification" : "ForTokenClassification"), config, task, device, dtype)
    {
        if (task is not (TaskType.SequenceClassification or TaskType.TokenClassification))
            throw new ArgumentException($"{family} has no {task.ToPeftString()} head");
    }

    /// <summary>Creates and registers the task's head; call after registering the backbone (state-dict order).</summary>
    private protected void AddHead(long inFeatures, Device device, ScalarType dtype, params string[] dropoutKeys)
    {
        int labels = TaskHeads.NumLabels(Config);
        if (Task == TaskType.SequenceClassification)
        {
            _head = new LinearLayer(inFeatures, labels, false, device, dtype);
            _padTokenId = TaskHeads.PadTokenId(Config);
            register_module("score", _head);
        }
        else
        {
            _head = new LinearLayer(inFeatures, labels, true, device, dtype);
            _dropout = TaskHeads.ClassifierDropout(Config, dropoutKeys);
            register_module("classifier", _head);
        }
    }

    /// <summary>The backbone's final hidden states (tensors land in the caller's dispose scope).</summary>
    private protected abstract BackboneOutput Encode(ForwardArgs args);

    protected override bool IsOptionalInCheckpoint(string name) =>
        name.StartsWith("score.", StringComparison.Ordinal) || name.StartsWith("classifier.", StringComparison.Ordinal);

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = Encode(args);
        var logits = Task == TaskType.SequenceClassification
            ? TaskHeads.PoolLastNonPad(_head!.forward(encoded.Hidden), args.InputsEmbeds is null ? args.InputIds : null, _padTokenId)
            : _head!.forward(SeededDropout.Apply(encoded.Hidden, _dropout, training, Random));
        return TaskHeads.Output(logits, encoded);
    }
}

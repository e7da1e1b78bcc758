using System.Collections.Frozen;
using Peft.Training.Tuners.AdaLora;
using Peft.Training.Tuners.Ia3;
using Peft.Training.Tuners.Lora;
using Peft.Training.Tuners.PrefixTuning;
using Peft.Training.Tuners.PromptTuning;
using Peft.Training.Tuners.PTuning;

namespace Peft.Training.Tuners;

/// <summary>The registered PEFT methods, keyed by <c>peft_type</c>. Adding a method = one line here.</summary>
public static class PeftMethods
{
    // Fixed at start-up (concurrent runs read it; nothing registers later).
    private static readonly FrozenDictionary<string, IPeftMethod> Methods = new IPeftMethod[]
    {
        new LoraMethod(), new Ia3Method(), new AdaLoraMethod(), new PrefixTuningMethod(), new PromptTuningMethod(), new PTuningMethod(),
    }.ToFrozenDictionary(m => m.PeftType, StringComparer.Ordinal);

    public static IPeftMethod Get(string peftType) =>
        Methods.TryGetValue(peftType, out var m) ? m
            : throw new PeftConfigException($"peft_type '{peftType}' is not supported (supported: {string.Join(", ", Methods.Keys.Order())})");

    public static IReadOnlyCollection<string> PeftTypes => Methods.Keys;
}

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
    private static readonly Dictionary<string, IPeftMethod> Methods = new(StringComparer.Ordinal);

    static PeftMethods()
    {
        Register(new LoraMethod());
        Register(new Ia3Method());
        Register(new AdaLoraMethod());
        Register(new PrefixTuningMethod());
        Register(new PromptTuningMethod());
        Register(new PTuningMethod());
    }

    public static void Register(IPeftMethod method) => Methods[method.PeftType] = method;

    public static IPeftMethod Get(string peftType) =>
        Methods.TryGetValue(peftType, out var m) ? m
            : throw new PeftConfigException($"peft_type '{peftType}' is not supported (supported: {string.Join(", ", Methods.Keys.Order())})");

    public static IReadOnlyCollection<string> PeftTypes => Methods.Keys;
}

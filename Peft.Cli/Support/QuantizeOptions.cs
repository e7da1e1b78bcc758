using System.CommandLine;
using Peft.Training.Quantization;

namespace Peft.Cli.Support;

/// <summary><c>--quantize nf4|fp4|int8</c> and <c>--double-quant</c>, shared by the commands that load a model.</summary>
internal sealed class QuantizeOptions
{
    public Option<string?> Method { get; } = new("--quantize")
    {
        Description = "Load the base weights quantised: nf4 (QLoRA), fp4 or int8 (bitsandbytes' formats)",
        HelpName = "nf4|fp4|int8",
    };

    public Option<bool> DoubleQuant { get; } = new("--double-quant") { Description = "With nf4/fp4: also quantise the per-block scales (about 0.13x of fp32 instead of 0.14x)" };

    public void AddTo(Command cmd)
    {
        cmd.Options.Add(Method);
        cmd.Options.Add(DoubleQuant);
    }

    public QuantizationConfig? Read(ParseResult p) => Build(p.GetValue(Method), p.GetValue(DoubleQuant), "--quantize");

    /// <summary>The config for a method name (null = no quantisation); bad names are usage errors naming <paramref name="flag"/>.</summary>
    public static QuantizationConfig? Build(string? method, bool doubleQuant, string flag) =>
        QuantizationConfig.FromNames(method, doubleQuant, flag, "--double-quant");
}

using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Peft.Analyzers;

namespace Peft.Tests.Build;

/// <summary>PEFT0001 flags the TorchSharp Scalars left to the finalizer and accepts the held ones.</summary>
public class ImplicitScalarAnalyzerTests
{
    private static async Task<List<int>> FlaggedLinesAsync(string body)
    {
        string source = $$"""
            using TorchSharp;
            using static TorchSharp.torch;
            static class Snippet
            {
                static readonly Scalar Shared = 2.0;
                static void Run(Tensor t)
                {
            {{body}}
                }
            }
            """;
        // The runtime's own assemblies and TorchSharp (not the test's other dependencies: Scalar.AspNetCore has a `Scalar` namespace).
        string runtime = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetDirectoryName(p) == runtime)
            .Append(typeof(TorchSharp.Scalar).Assembly.Location)
            .Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("snippet", [CSharpSyntaxTree.ParseText(source)], references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var diagnostics = await compilation.WithAnalyzers([new ImplicitScalarAnalyzer()]).GetAnalyzerDiagnosticsAsync();
        Assert.All(diagnostics, d => Assert.Equal("PEFT0001", d.Id));
        return diagnostics.Select(d => d.Location.GetLineSpan().StartLinePosition.Line - 7).Distinct().Order().ToList();   // body lines, from 0
    }

    [Fact]
    public async Task FlagsNumbersTurnedIntoTemporaryScalars()
    {
        Assert.Equal([0, 1, 2, 3, 4], await FlaggedLinesAsync("""
                    var a = t * 0.5;
                    var b = t.mul(0.5);
                    var c = t.masked_fill(t.eq(t), 1);
                    Scalar plain = 3; var d = t.pow(plain);
                    using Scalar lo = 0, hi = 10; var e = torch.arange(lo, hi, device: t.device);   // no step: TorchSharp makes one
            """));
    }

    [Fact]
    public async Task AcceptsScalarsHeldByUsingLocalsOrFields()
    {
        Assert.Empty(await FlaggedLinesAsync("""
                    using Scalar half = 0.5, zero = 0, one = 1L;
                    var a = t * half;
                    var b = t.mul(Shared);
                    var c = t.masked_fill(t.eq(t), zero);
                    var e = torch.arange(zero, one, one, ScalarType.Int64, t.device);
            """));
    }
}

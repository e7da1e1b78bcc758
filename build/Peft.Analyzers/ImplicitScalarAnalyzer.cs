using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Peft.Analyzers;

/// <summary>
/// PEFT0001: a number converted implicitly to a TorchSharp <c>Scalar</c> as an argument or operand. TorchSharp 0.107
/// leaves such a temporary to its finalizer, and nothing keeps it alive once its handle is read, so under GC pressure
/// the finalizer thread can free the native scalar while the op still reads it ("Unknown scalar type", wrong values;
/// TorchSharp PRs #1434/#1496). Holding the Scalar in a <c>using</c> local for the duration of the call is the fix.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class ImplicitScalarAnalyzer : DiagnosticAnalyzer
{
    public static readonly DiagnosticDescriptor Rule = new(
        "PEFT0001",
        "Temporary TorchSharp Scalar",
        "'{0}' becomes a temporary TorchSharp Scalar that the finalizer may free during the native call; hold it in a 'using Scalar' local",
        "Reliability",
        DiagnosticSeverity.Warning,
        isEnabledByDefault: true);

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => ImmutableArray.Create(Rule);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var scalar = start.Compilation.GetTypeByMetadataName("TorchSharp.Scalar");
            if (scalar is null) return;
            start.RegisterOperationAction(c => Check(c, scalar), OperationKind.Conversion);
            start.RegisterOperationAction(c => CheckOperator(c, ((IBinaryOperation)c.Operation).OperatorMethod), OperationKind.Binary);
            start.RegisterOperationAction(c => CheckOperator(c, ((ICompoundAssignmentOperation)c.Operation).OperatorMethod), OperationKind.CompoundAssignment);
            start.RegisterOperationAction(c => CheckOperator(c, ((IUnaryOperation)c.Operation).OperatorMethod), OperationKind.Unary);
        });
    }

    /// <summary>Tensor's operators with a number operand (<c>t * 0.5</c>) make the same temporary Scalar inside TorchSharp.</summary>
    private static void CheckOperator(OperationAnalysisContext c, IMethodSymbol? op)
    {
        if (op is null || op.ContainingType is not { Name: "Tensor", ContainingType.Name: "torch" } tensor
            || tensor.ContainingNamespace?.Name != "TorchSharp") return;
        foreach (var p in op.Parameters)
            if (p.Type.SpecialType is SpecialType.System_Double or SpecialType.System_Single or SpecialType.System_Int32
                or SpecialType.System_Int64 or SpecialType.System_Int16 or SpecialType.System_Byte or SpecialType.System_SByte
                or SpecialType.System_Boolean)
            {
                c.ReportDiagnostic(Diagnostic.Create(Rule, c.Operation.Syntax.GetLocation(), c.Operation.Syntax.ToString()));
                return;
            }
    }

    private static void Check(OperationAnalysisContext c, INamedTypeSymbol scalar)
    {
        var conversion = (IConversionOperation)c.Operation;
        if (!conversion.Conversion.IsUserDefined || !SymbolEqualityComparer.Default.Equals(conversion.Type, scalar)) return;
        // Stored in a variable or field: the holder keeps it alive (and a `using` disposes it).
        if (conversion.Parent is IVariableInitializerOperation or ISimpleAssignmentOperation) return;
        c.ReportDiagnostic(Diagnostic.Create(Rule, conversion.Syntax.GetLocation(), conversion.Operand.Syntax.ToString()));
    }
}

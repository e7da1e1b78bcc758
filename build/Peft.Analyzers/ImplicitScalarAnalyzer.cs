using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Peft.Analyzers;

/// <summary>
/// PEFT0001: a number converted implicitly to a TorchSharp <c>Scalar</c> as an argument or operand (or held in a
/// plain local rather than a <c>using</c> one or a field), and <c>torch.arange</c> without an explicit step. TorchSharp 0.107
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
        "'{0}' makes a temporary TorchSharp Scalar that the finalizer may free during the native call; hold it in a 'using Scalar' local (ranges: Peft.Training.Nn.TensorRanges.Of)",
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
            start.RegisterOperationAction(CheckArange, OperationKind.Invocation);
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
        if (HeldAlive(conversion.Parent)) return;
        c.ReportDiagnostic(Diagnostic.Create(Rule, conversion.Syntax.GetLocation(), conversion.Operand.Syntax.ToString()));
    }

    /// <summary>
    /// A field (its owner keeps it) or a <c>using</c> local (disposed at the end of its block, so alive until then). A
    /// plain local is not enough: the JIT may treat it as dead after its last read, which is the handle's.
    /// </summary>
    private static bool HeldAlive(IOperation? parent) => parent switch
    {
        IFieldInitializerOperation => true,
        ISimpleAssignmentOperation a => a.Target is IFieldReferenceOperation,
        IVariableInitializerOperation v => v.Parent?.Parent?.Parent is IVariableDeclarationGroupOperation { Parent: IUsingDeclarationOperation }
            || v.Parent?.Parent?.Parent?.Parent is IUsingOperation,
        _ => false,
    };

    /// <summary><c>torch.arange</c> without a step makes its default step (and start) Scalars inside TorchSharp.</summary>
    private static void CheckArange(OperationAnalysisContext c)
    {
        var call = (IInvocationOperation)c.Operation;
        var m = call.TargetMethod;
        if (m.Name != "arange" || m.ContainingType is not { Name: "torch", ContainingNamespace.Name: "TorchSharp" }) return;
        foreach (var p in m.Parameters)
            if (p.Name == "step") return;
        c.ReportDiagnostic(Diagnostic.Create(Rule, call.Syntax.GetLocation(), call.Syntax.ToString()));
    }
}

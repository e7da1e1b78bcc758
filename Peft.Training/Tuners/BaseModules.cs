using static TorchSharp.torch;

namespace Peft.Training.Tuners;

/// <summary>
/// The modules of a model outside adapter containers, in TorchSharp's <c>named_modules</c> order (a module's
/// children, then each child's modules; no root): what target matching and modules_to_save look at. Walking every
/// adapter's own modules too, as a filtered <c>named_modules</c> does, made each new adapter of a server holding a
/// hundred cost ~10 ms more.
/// </summary>
internal static class BaseModules
{
    public static List<(string Path, nn.Module Module)> Of(nn.Module root)
    {
        var found = new List<(string, nn.Module)>();
        Walk(root, "", found);
        return found;
    }

    private static void Walk(nn.Module module, string prefix, List<(string, nn.Module)> found)
    {
        var children = module.named_children().Where(c => !TargetMatching.IsAdapterContainer(c.name))
            .Select(c => (Path: prefix.Length == 0 ? c.name : $"{prefix}.{c.name}", c.module)).ToList();
        found.AddRange(children);
        foreach (var (path, child) in children) Walk(child, path, found);
    }
}

using TorchSharp;

namespace Peft.Training.Nn;

/// <summary>
/// A name → module container whose entries show up in parameter names (<c>lora_A.default.weight</c>). TorchSharp's
/// ModuleDict does not expose entries added after it was registered, so this registers each entry directly.
/// </summary>
public sealed class ModuleMap<T> : torch.nn.Module where T : torch.nn.Module
{
    private readonly Dictionary<string, T> _items = new();

    public ModuleMap() : base("ModuleMap") { }

    public T this[string key] => _items[key];
    public IEnumerable<string> Keys => _items.Keys;
    public int Count => _items.Count;
    public bool ContainsKey(string key) => _items.ContainsKey(key);
    public bool TryGetValue(string key, out T value) => _items.TryGetValue(key, out value!);

    public void Add(string key, T module)
    {
        if (key.Contains('.')) throw new ArgumentException($"adapter name '{key}' must not contain '.'");
        _items.Add(key, module);
        register_module(key, module);
    }

    public bool Remove(string key)
    {
        if (!_items.Remove(key, out var m)) return false;
        register_module(key, null!);
        m.Dispose();
        return true;
    }
}

using Microsoft.Extensions.Options;
using Peft.Core;
using Peft.Core.Data;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;
using Peft.Training.Tokenization;

namespace Peft.Web.Serving;

/// <summary>
/// The one served base model: owns the <see cref="ServingEngine"/> (whose loop thread is the only user of the model),
/// its adapter cache and tokenizer. Singleton; everything here is safe to call from concurrent requests.
/// </summary>
public sealed class InferenceService : IDisposable
{
    private readonly Lock _tokenizerGate = new();
    private readonly ITextTokenizer _tokenizer;

    public InferenceService(IOptions<ServingOptions> options, IHostEnvironment env, ServingMetrics metrics, IAdapterSource adapters)
    {
        Options = options.Value;
        string modelDir = Locate(Options.ModelPath, env.ContentRootPath)
            ?? throw new PeftUserException($"Serving:ModelPath '{Options.ModelPath}' not found from {env.ContentRootPath}", UserErrorKind.NotFound);
        ModelName = Options.ModelName ?? Path.GetFileName(modelDir.TrimEnd('/'));
        _tokenizer = AutoTokenizer.FromFolder(modelDir);
        var model = AutoModel.FromPretrained(modelDir);
        Cache = new AdapterCache(adapters, new AdapterCacheOptions
        {
            BaseModelName = ModelName,
            DeviceBudgetBytes = Options.DeviceBudgetMb << 20,
            HostBudgetBytes = Options.HostBudgetMb << 20,
        }, metrics);
        Engine = new ServingEngine(model, Cache, new ServingEngineOptions
        {
            MaxBatchSize = Options.MaxBatchSize,
            MaxQueue = Options.MaxQueue,
            MaxTokensLimit = Options.MaxTokensLimit,
        }, Decode, metrics);
        ChatFamily = ChatTemplates.Detect(_tokenizer.ChatTemplate);
    }

    public ServingOptions Options { get; }
    public string ModelName { get; }
    public ServingEngine Engine { get; }
    public AdapterCache Cache { get; }
    public ChatTemplateFamily ChatFamily { get; }

    internal static string? Locate(string path, string root)
    {
        if (Path.IsPathRooted(path)) return Directory.Exists(path) ? path : null;
        for (var dir = new DirectoryInfo(root); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, path);
            if (Directory.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>
    /// The adapter a request names: the base model's name (or empty) = none; else <c>name</c>, <c>name@3</c>,
    /// <c>name@alias</c>; or a LoRAX merge. Leased: pass it to <see cref="Submit"/> or dispose it.
    /// </summary>
    public async Task<AdapterLease?> ResolveAsync(string? model, MergeSpec? merge, CancellationToken ct)
    {
        if (merge is not null) return await Cache.AcquireMergedAsync(merge, ct);
        if (string.IsNullOrEmpty(model) || model == ModelName) return null;
        return await Cache.AcquireAsync(model, ct);
    }

    public IReadOnlyList<int> Encode(string text)
    {
        lock (_tokenizerGate) return _tokenizer.Encode(text);
    }

    public string Decode(IReadOnlyList<int> ids)
    {
        lock (_tokenizerGate) return _tokenizer.Decode(ids, skipSpecialTokens: true);
    }

    public string TokenText(int id)
    {
        lock (_tokenizerGate) return _tokenizer.Decode([id], skipSpecialTokens: false);
    }

    public bool IsSpecial(int id) => id == _tokenizer.EosTokenId || id == _tokenizer.BosTokenId || id == _tokenizer.PadTokenId;

    /// <summary>
    /// Chat prompt through the tokenizer's template family (<see cref="ChatTemplates"/>); a tokenizer without a
    /// template (the demo model) gets the documented ChatML fallback. Returns the text and the turn's end marker.
    /// </summary>
    public (string Prompt, string EndOfTurn) RenderChat(IReadOnlyList<ChatMessage> messages)
    {
        var text = string.Concat(ChatTemplates.Render(messages, _tokenizer.ChatTemplate, _tokenizer.BosToken, _tokenizer.EosToken).Select(s => s.Text));
        return ChatFamily switch
        {
            ChatTemplateFamily.Llama3 => (text + "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
            ChatTemplateFamily.Zephyr => (text + "<|assistant|>\n", "<|user|>"),
            ChatTemplateFamily.Llama2 => (text, "[INST]"),
            _ => (text + "<|im_start|>assistant\n", "<|im_end|>"),
        };
    }

    /// <summary>Queues a sequence; cancelled by the client's disconnect or the configured timeout.</summary>
    public InferenceRequest Submit(IReadOnlyList<int> prompt, SamplingParams p, AdapterLease? lease, CancellationToken ct) =>
        Engine.Submit(prompt, p, lease, ct);

    public void Dispose()
    {
        Engine.Dispose();
        Cache.Dispose();
        _tokenizer.Dispose();
    }
}

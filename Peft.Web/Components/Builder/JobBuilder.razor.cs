using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.AspNetCore.Components.Forms;
using Microsoft.JSInterop;
using MudBlazor;
using Peft.Core;
using Peft.Storage.Model;
using Peft.Training.Tuners;
using Peft.Web.Builder;
using Peft.Web.Infrastructure;

namespace Peft.Web.Components.Builder;

/// <summary>
/// The job builder: a <see cref="JobForm"/> checked and estimated by <see cref="JobBuilderService"/> after every change
/// (debounced, off the circuit's thread), with the JSON body and the <c>peft train</c> command to copy. Submitting
/// raises <see cref="OnSubmit"/> with the body; the host page decides what submitting means.
/// </summary>
public sealed partial class JobBuilder : IDisposable
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    /// <summary>Browser uploads are buffered for the preview; bigger files go through the datasets API.</summary>
    public const long MaxBrowserUploadBytes = 64L << 20;

    [Inject] private ServiceRunner Services { get; set; } = default!;
    [Inject] private IJSRuntime JS { get; set; } = default!;
    [Inject] private ISnackbar Snackbar { get; set; } = default!;
    [CascadingParameter] private Task<AuthenticationState>? AuthState { get; set; }

    /// <summary>Raised with the <c>POST /api/jobs</c> body once the form passes every check; no submit button without it.</summary>
    [Parameter] public EventCallback<JsonObject> OnSubmit { get; set; }
    /// <summary>Problems the server reported for the last submission (problem details mapped to keys), shown at their fields.</summary>
    [Parameter] public IReadOnlyList<BuilderProblem>? ServerProblems { get; set; }
    /// <summary>Debounce before a check runs (tests may shorten it).</summary>
    [Parameter] public int CheckDelayMs { get; set; } = 250;

    private readonly JobForm _form = new();
    private List<BaseModel> _bases = [];
    private List<Dataset> _datasets = [];
    private BuilderBase? _base;
    private string? _baseError, _dataFile;
    private BuilderCheck? _check;
    private bool _checking, _submitting, _advanced;
    private CancellationTokenSource? _pending;
    private string? _checkedBody;

    // Dataset upload with preview.
    private byte[]? _uploadBytes;
    private string? _uploadFileName, _uploadName, _uploadError;
    private DataPreview? _preview;
    private bool _uploading;

    public JobForm Form => _form;
    public BuilderCheck? LastCheck => _check;

    private JsonObject Body => _form.ToBody();
    private string BodyJson => Body.ToJsonString(Indented);
    private string Command => _form.ToCommand(_base?.Model.Folder, _dataFile);

    protected override async Task OnInitializedAsync()
    {
        _bases = await Services.RunAsync<JobBuilderService, List<BaseModel>>(s => s.BasesAsync(CancellationToken.None));
        _datasets = await Services.RunAsync<JobBuilderService, List<Dataset>>(s => s.DatasetsAsync(CancellationToken.None));
        _form.Dataset = _datasets.FirstOrDefault()?.Name;
        if (_bases.Count > 0) await BaseChangedAsync(_bases[0].Name);
        else await DatasetChangedAsync(_form.Dataset);
    }

    private async Task BaseChangedAsync(string? name)
    {
        _form.BaseModel = name;
        _base = null;
        _baseError = null;
        if (name is not null)
        {
            try
            {
                _base = await Services.RunAsync<JobBuilderService, BuilderBase>(s => s.InspectAsync(name, CancellationToken.None));
                // The family default preselected, as PEFT picks it when target_modules is absent.
                _form.TargetModules = _base.Summary.DefaultTargets?.Where(_base.Summary.TargetableModules.Contains).ToList() ?? [];
            }
            catch (PeftUserException e) { _baseError = e.Message; }
        }
        await DatasetChangedAsync(_form.Dataset);
    }

    private async Task DatasetChangedAsync(string? name)
    {
        _form.Dataset = name;
        _dataFile = name is null ? null : await Services.RunAsync<JobBuilderService, string?>(s => s.DatasetFileAsync(name, CancellationToken.None));
        Changed();
    }

    private void MethodChanged(string method)
    {
        _form.Method = method;
        Changed();
    }

    private void PresetChanged(string name)
    {
        _form.ApplyPreset(JobPreset.All.First(p => p.Name == name));
        Changed();
    }

    private void TargetToggled(string module, bool on)
    {
        // all-linear replaces a list of names (PEFT's either/or).
        _form.TargetModules = module == JobForm.AllLinear ? (on ? [JobForm.AllLinear] : [])
            : on ? [.. _form.TargetModules.Where(t => t != JobForm.AllLinear), module] : _form.TargetModules.Where(t => t != module).ToList();
        Changed();
    }

    private void QuantizeChanged(string? value)
    {
        _form.Quantize = string.IsNullOrEmpty(value) ? null : value;
        if (_form.Quantize is null or "int8") _form.DoubleQuant = false;
        Changed();
    }

    /// <summary>Any field changed: check again after a short pause (a newer change cancels the pending check).</summary>
    private void Changed()
    {
        // Components re-report unchanged values when they re-render; only a different body is checked again.
        var body = Body;
        var text = body.ToJsonString();
        if (text == _checkedBody) return;
        _checkedBody = text;
        _pending?.Cancel();
        _pending?.Dispose();
        var cts = _pending = new CancellationTokenSource();
        _checking = true;
        _ = CheckLaterAsync(body, cts.Token);
    }

    private async Task CheckLaterAsync(JsonObject body, CancellationToken ct)
    {
        try
        {
            await Task.Delay(CheckDelayMs, ct);
            var check = await Services.RunAsync<JobBuilderService, BuilderCheck>(s => s.CheckAsync(body, ct));
            if (ct.IsCancellationRequested) return;
            _check = check;
            _checking = false;
            await InvokeAsync(StateHasChanged);
        }
        catch (OperationCanceledException) { }
        catch (PeftUserException e)
        {
            _check = new BuilderCheck([new("", e.Message)], null);
            _checking = false;
            await InvokeAsync(StateHasChanged);
        }
    }

    /// <summary>The problem of <paramref name="key"/>, server's first, prefixed by the key so the user sees what it concerns.</summary>
    private string? ProblemOf(string key)
    {
        var message = ServerProblems?.FirstOrDefault(p => p.Key == key)?.Message ?? _check?.ProblemOf(key);
        return message is null ? null : message.StartsWith(key + ":", StringComparison.Ordinal) ? message : $"{key}: {message}";
    }

    private bool Has(string key) => ProblemOf(key) is not null;

    /// <summary>Problems with no field of their own on the form (unknown keys, the plan's general errors).</summary>
    private IEnumerable<BuilderProblem> OtherProblems =>
        (_check?.Problems ?? []).Concat(ServerProblems ?? []).Where(p => !FieldKeys.Contains(p.Key));

    private static readonly HashSet<string> FieldKeys =
    [
        "base_model", "dataset", "adapter_name", "method", "r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "init_r",
        "target_r", "num_virtual_tokens", "encoder_hidden_size", "prefix_projection", "quantize", "double_quant", "epochs", "max_steps",
        "learning_rate", "batch_size", "grad_accum", "max_length", "scheduler", "warmup", "weight_decay", "validation_split", "seed",
        "gradient_checkpointing", "bf16",
    ];

    private async Task SubmitAsync()
    {
        _submitting = true;
        try
        {
            _pending?.Cancel();
            var body = Body;
            _check = await Services.RunAsync<JobBuilderService, BuilderCheck>(s => s.CheckAsync(body, CancellationToken.None));
            _checking = false;
            if (_check.Ok) await OnSubmit.InvokeAsync(body);
        }
        finally { _submitting = false; }
    }

    private async Task CopyAsync(string text, string what)
    {
        try
        {
            await JS.InvokeVoidAsync("navigator.clipboard.writeText", text);
            Snackbar.Add($"{what} copied.", Severity.Success);
        }
        catch (JSException) { Snackbar.Add($"The browser refused the clipboard; select the {what} and copy it.", Severity.Warning); }
    }

    private async Task FileChosenAsync(InputFileChangeEventArgs e)
    {
        _preview = null;
        _uploadError = null;
        _uploadBytes = null;
        var file = e.File;
        _uploadFileName = file.Name;
        _uploadName = DatasetNameOf(file.Name);
        if (file.Size > MaxBrowserUploadBytes)
        {
            _uploadError = $"'{file.Name}' is {file.Size >> 20} MiB; the browser takes up to {MaxBrowserUploadBytes >> 20} MiB (use POST /api/datasets for more)";
            return;
        }
        try
        {
            using var buffer = new MemoryStream();
            await using (var stream = file.OpenReadStream(MaxBrowserUploadBytes)) await stream.CopyToAsync(buffer);
            _uploadBytes = buffer.ToArray();
            var bytes = _uploadBytes;
            _preview = await Services.RunAsync<JobBuilderService, DataPreview>(s => s.PreviewAsync(file.Name, new MemoryStream(bytes), CancellationToken.None));
        }
        catch (PeftUserException ex) { _uploadError = ex.Message; }
        catch (IOException ex) { _uploadError = $"the file could not be read: {ex.Message}"; }
    }

    private async Task SaveDatasetAsync()
    {
        if (_uploadBytes is null || _uploadFileName is null || _preview is not { Ok: true }) return;
        _uploading = true;
        _uploadError = null;
        try
        {
            var user = AuthState is null ? null : (await AuthState).User.Identity?.Name;
            var (name, fileName, bytes) = ((_uploadName ?? "").Trim(), _uploadFileName, _uploadBytes);
            var dataset = await Services.RunAsync<JobBuilderService, Dataset>(s => s.UploadDatasetAsync(name, fileName, new MemoryStream(bytes), user, CancellationToken.None));
            _datasets = await Services.RunAsync<JobBuilderService, List<Dataset>>(s => s.DatasetsAsync(CancellationToken.None));
            _uploadBytes = null;
            _preview = null;
            Snackbar.Add($"Dataset {dataset.Name} saved ({dataset.RowCount} rows).", Severity.Success);
            await DatasetChangedAsync(dataset.Name);
        }
        catch (PeftUserException ex) { _uploadError = ex.Message; }
        finally { _uploading = false; }
    }

    /// <summary>A catalog name from a file name: its stem with anything but letters, digits, '.', '_' and '-' replaced.</summary>
    internal static string DatasetNameOf(string fileName)
    {
        var stem = Path.GetFileNameWithoutExtension(fileName);
        var chars = stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '-').ToArray();
        return new string(chars).Trim('-', '.') is { Length: > 0 } s ? s : "dataset";
    }

    private static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    private static string Summary(BuilderEstimate e) => PeftModel.FormatSummary(e.Counts.TrainableParameters, e.Counts.AllParameters);

    public void Dispose()
    {
        _pending?.Cancel();
        _pending?.Dispose();
    }
}

using System.Text.Json.Nodes;
using Bunit;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;
using Peft.Web.Apis;
using Peft.Web.Components.Jobs;
using Peft.Web.Components.Shared;
using Peft.Web.Playground;

namespace Peft.Tests.Web;

/// <summary>
/// What the job page computes from a job's events (chart series, progress, ETA and rate text, readable errors) and how
/// the playground shows a classifier's label probabilities.
/// </summary>
public sealed class JobViewTests : MudComponentTest
{
    private static string StepJson(int step, double loss, double lr = 0.005, double grad = 1.5, double tps = 900, double? eta = 12) =>
        $$"""{"type":"step","step":{{step}},"total_steps":8,"epoch":0.1,"loss":{{loss}},"lr":{{lr}},"grad_norm":{{grad}},"tokens_per_sec":{{tps}},"elapsed_s":1{{(eta is { } e ? $",\"eta_s\":{e}" : "")}}}""";

    [Fact]
    public void Steps_build_the_chart_series_and_a_resumed_attempt_replaces_the_steps_after_its_checkpoint()
    {
        var view = new JobLiveView();
        view.Load([
            new JobEventDto(1, 1, "attempt", 0, DateTimeOffset.UnixEpoch, """{"type":"attempt","attempt":1}"""),
            new JobEventDto(2, 1, "start", 0, DateTimeOffset.UnixEpoch, """{"type":"start","step":0,"total_steps":8}"""),
            new JobEventDto(3, 1, "step", 1, DateTimeOffset.UnixEpoch, StepJson(1, 3.0)),
            new JobEventDto(4, 1, "step", 2, DateTimeOffset.UnixEpoch, StepJson(2, 2.5)),
            new JobEventDto(5, 1, "step", 3, DateTimeOffset.UnixEpoch, StepJson(3, 2.4)),
        ]);
        Assert.Equal(3, view.Step);
        Assert.Equal(8, view.TotalSteps);
        Assert.Equal(37.5, view.Percent);

        // The attempt crashed after step 3; the next resumed from the step-2 checkpoint and wrote step 3 again.
        Assert.True(view.Apply(6, "state", """{"type":"state","state":"crashed","message":"exit code 137"}"""));
        Assert.True(view.Apply(7, "step", StepJson(3, 2.2, grad: 0.9)));
        Assert.False(view.Apply(7, "step", StepJson(3, 9.9)));   // the live feed repeating a stored event
        Assert.True(view.Apply(8, "eval", """{"type":"eval","step":3,"eval_loss":2.6,"eval_perplexity":13.5}"""));

        Assert.Equal([1, 2, 3], view.Steps.Select(s => s.Step));
        var loss = view.LossSeries();
        Assert.Equal(["loss", "eval_loss"], loss.Select(s => s.Name));
        Assert.Equal([3.0, 2.5, 2.2], loss[0].Data.Values);
        // The eval line has a point only where an evaluation ran (gaps, not zeros, elsewhere).
        Assert.Equal([false, false, true], Enumerable.Range(0, 3).Select(i => loss[1].Data[i].HasValue));
        Assert.Equal(2.6, loss[1].Data.Values[2]);
        Assert.Equal([1.5, 1.5, 0.9], view.GradNormSeries()[0].Data.Values);
        Assert.Equal([0.005, 0.005, 0.005], view.LearningRateSeries()[0].Data.Values);
        Assert.Equal(["1", "2", "3"], view.StepLabels());
        Assert.Equal(13.5, view.Evals[3]["eval_perplexity"]);
        Assert.Equal("900 tokens/s", JobLiveView.FormatRate(view.TokensPerSecond));
        Assert.Equal("12 s", JobLiveView.FormatEta(view.EtaSeconds));
        Assert.Contains(view.Log, l => l.IsError && l.Text == "state → crashed: exit code 137");
        Assert.Contains(view.Log, l => l.Text.StartsWith("step 3/8 loss 2.2 lr 0.005 grad norm 0.9", StringComparison.Ordinal));

        Assert.True(view.Apply(9, "state", """{"type":"state","state":"succeeded","version_id":4}"""));
        Assert.Equal(100, view.Percent);
        Assert.Null(view.EtaSeconds);
    }

    [Fact]
    public void Long_runs_label_about_a_dozen_steps_and_the_log_keeps_the_newest_lines()
    {
        var view = new JobLiveView();
        for (int i = 1; i <= 600; i++) view.Apply(i, "step", StepJson(i, 1.0 / i));
        var labels = view.StepLabels();
        Assert.Equal(600, labels.Length);
        Assert.InRange(labels.Count(l => l.Length > 0), 10, 14);
        Assert.Equal("600", labels[^1]);
        Assert.Equal(JobLiveView.MaxLogLines, view.Log.Count);
        Assert.Equal(600, view.Log.Last().Seq);
    }

    [Theory]
    [InlineData(null, "–")]
    [InlineData(-1.0, "–")]
    [InlineData(0.4, "0 s")]
    [InlineData(59.0, "59 s")]
    [InlineData(185.0, "3 min 05 s")]
    [InlineData(3720.0, "1 h 02 min")]
    public void The_eta_reads_in_hours_minutes_and_seconds(double? seconds, string expected) =>
        Assert.Equal(expected, JobLiveView.FormatEta(seconds));

    [Theory]
    [InlineData(null, "–")]
    [InlineData(double.NaN, "–")]
    [InlineData(851.6, "852 tokens/s")]
    [InlineData(12345.0, "12.3k tokens/s")]
    public void Tokens_per_second_read_as_a_rate(double? rate, string expected) => Assert.Equal(expected, JobLiveView.FormatRate(rate));

    [Fact]
    public void A_failure_is_shown_without_its_stack_trace()
    {
        const string error = "System.InvalidOperationException: dataset has no 'text' column\n   at Peft.Training.Data.Load(String path)\n   at Peft.Cli.Train.Run()";
        Assert.Equal("System.InvalidOperationException: dataset has no 'text' column", JobLiveView.Readable(error));
        Assert.Equal("max_length: must be ≤ 2048", JobLiveView.Readable("max_length: must be ≤ 2048"));
        Assert.Equal("The job failed; its log has the details.", JobLiveView.Readable("   at Peft.X()"));
    }

    [Fact]
    public void The_job_chart_says_so_when_there_are_no_steps_and_names_the_unit_of_small_values()
    {
        var view = new JobLiveView();
        var empty = Ctx.Render<JobChart>(p => p.Add(c => c.Series, view.LossSeries()).Add(c => c.Labels, view.StepLabels()).Add(c => c.Empty, true));
        Assert.Equal("No steps yet.", empty.Find("[data-testid=chart-empty]").TextContent);

        for (int i = 1; i <= 5; i++) view.Apply(i, "step", StepJson(i, 3.0 - i * 0.3, lr: 0.0005 * (6 - i)));
        var loss = Ctx.Render<JobChart>(p => p.Add(c => c.Series, view.LossSeries()).Add(c => c.Labels, view.StepLabels()).Add(c => c.Empty, false));
        Assert.Empty(loss.FindAll("[data-testid=chart-empty]"));
        Assert.Empty(loss.FindAll("[data-testid=chart-unit]"));   // a loss of 2.7 is drawn as it is
        Assert.NotEmpty(loss.FindAll("svg"));
        var lr = Ctx.Render<JobChart>(p => p.Add(c => c.Series, view.LearningRateSeries()).Add(c => c.Labels, view.StepLabels()).Add(c => c.Empty, false));
        Assert.Equal("values × 1e-3", lr.Find("[data-testid=chart-unit]").TextContent);
    }

    [Fact]
    public void Label_probabilities_are_listed_most_likely_first_with_percentages()
    {
        var labels = new List<LabelProbability> { new("negative", 0.1), new("positive", 0.899), new("neutral", 0.0005) };
        var cut = Ctx.Render<LabelProbabilities>(p => p.Add(c => c.Labels, labels));
        var rows = cut.FindAll("[data-testid=label-row]");
        Assert.Equal(3, rows.Count);
        Assert.Equal("positive", cut.Find("[data-testid=label-top]").TextContent);
        Assert.Equal(["89.9 %", "10.0 %", "< 0.1 %"], cut.FindAll("[data-testid=label-percent]").Select(e => e.TextContent));
        Assert.StartsWith("neutral", rows[2].TextContent.Trim());
    }

    [Fact]
    public async Task The_clone_dialog_submits_only_the_values_changed_and_keeps_the_requests_learning_rate_key()
    {
        var provider = Ctx.Render<MudDialogProvider>();
        var dialogs = Ctx.Services.GetRequiredService<IDialogService>();
        var config = JsonNode.Parse("""{"method":"lora","max_steps":8,"lr":0.005,"seed":42,"r":4}""");
        var parameters = new DialogParameters<CloneJobDialog> { { d => d.JobId, 3L }, { d => d.AdapterName, "ledger" }, { d => d.Config, config } };
        IDialogReference? reference = null;
        await provider.InvokeAsync(async () => reference = await dialogs.ShowAsync<CloneJobDialog>("Clone job", parameters));

        Assert.Equal("42", provider.Find("[data-testid=clone-seed] input, input[data-testid=clone-seed]").GetAttribute("value"));
        Assert.Equal("0.005", provider.Find("[data-testid=clone-learning_rate] input, input[data-testid=clone-learning_rate]").GetAttribute("value"));
        await provider.Find("[data-testid=clone-seed] input, input[data-testid=clone-seed]").ChangeAsync(new() { Value = "7" });
        await provider.Find("[data-testid=clone-learning_rate] input, input[data-testid=clone-learning_rate]").ChangeAsync(new() { Value = "0.01" });
        await provider.Find("[data-testid=clone-confirm]").ClickAsync(new());

        var result = await reference!.Result;
        Assert.False(result!.Canceled);
        var edits = Assert.IsType<JsonObject>(result.Data);
        Assert.Equal("""{"seed":7,"lr":0.01}""", edits.ToJsonString());
    }

    [Theory]
    [InlineData(0.005, 1000.0, -3, 2)]     // a learning rate: drawn ×1e3 (5), ticks every 2
    [InlineData(7.57, 1.0, 0, 2)]          // a loss of 7.6 as it is, ticks every 2
    [InlineData(250.0, 1.0, 0, 100)]
    [InlineData(0.0, 1.0, 0, 1)]
    public void Chart_axes_scale_small_values_and_space_about_four_ticks(double max, double scale, int exponent, int ticks) =>
        Assert.Equal(new ChartAxis(scale, exponent, ticks), ChartAxis.For(max));
}

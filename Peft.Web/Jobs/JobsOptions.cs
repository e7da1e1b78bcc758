namespace Peft.Web.Jobs;

/// <summary>Fine-tuning job settings (section <c>Jobs</c>).</summary>
public sealed class JobsOptions
{
    public const string Section = "Jobs";

    /// <summary>Sqlite (default: <c>hangfire.db</c> under the hub data dir) or Postgres (ConnectionStrings:Hangfire).</summary>
    public string Storage { get; set; } = "Sqlite";

    /// <summary>Run a Hangfire server in this process (web role). A worker-only process always runs one.</summary>
    public bool RunServer { get; set; } = true;

    /// <summary>Workers per queue this process serves; a queue with 0 (or absent) is not taken here.</summary>
    public Dictionary<string, int> Queues { get; set; } = new() { ["cpu"] = 1 };

    /// <summary>A supervisor whose heartbeat is older than this has lost its job; another delivery resumes it.</summary>
    public TimeSpan LeaseTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>How often every server looks for jobs whose owner died (recovery ≤ LeaseTimeout + this).</summary>
    public TimeSpan RecoveryInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Hangfire.Storage.SQLite redelivers a job fetched this long ago (no keep-alive); the lease makes that harmless.</summary>
    public TimeSpan InvisibilityTimeout { get; set; } = TimeSpan.FromMinutes(30);

    public TimeSpan QueuePollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Crashed training processes (killed, out of memory, native fault) resumed before the job is failed.</summary>
    public int MaxCrashRetries { get; set; } = 3;

    /// <summary>Checkpoint every N steps when the request does not set <c>save_every</c> (resume granularity).</summary>
    public int DefaultSaveEvery { get; set; } = 50;

    /// <summary>After asking the trainer to stop (cancel), wait this long for its checkpoint before killing it.</summary>
    public TimeSpan StopGrace { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Program and leading arguments of the training process; empty = this binary's hidden train-child role
    /// (<c>dotnet Peft.Web.dll --role train-child</c>).
    /// </summary>
    public string[] TrainerCommand { get; set; } = [];
}

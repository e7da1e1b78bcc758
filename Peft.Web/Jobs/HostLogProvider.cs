using Hangfire.AspNetCore;
using Hangfire.Logging;

namespace Peft.Web.Jobs;

/// <summary>
/// Hangfire logs through one process-wide provider (<c>LogProvider</c> is static), but one process may run several
/// hosts (the tests do), each with an <see cref="ILoggerFactory"/> disposed with it. Hangfire's default provider keeps
/// the factory of whichever host configured it last, so a later host's <c>BackgroundJobServer</c> failed in its
/// constructor with ObjectDisposedException when that host was gone. This one logs through the newest live host.
/// </summary>
internal sealed class HostLogProvider : ILogProvider
{
    public static readonly HostLogProvider Instance = new();

    private readonly object _gate = new();
    private readonly List<ILoggerFactory> _live = [];

    private HostLogProvider() { }

    /// <summary>Makes <paramref name="factory"/> the one Hangfire logs through until the returned handle is disposed.</summary>
    public IDisposable Attach(ILoggerFactory factory)
    {
        lock (_gate) _live.Add(factory);
        return new Detacher(this, factory);
    }

    public ILog GetLogger(string name)
    {
        ILoggerFactory? factory;
        lock (_gate) factory = _live.Count > 0 ? _live[^1] : null;
        if (factory is null) return Silent.Instance;
        try { return new AspNetCoreLogProvider(factory).GetLogger(name); }
        catch (ObjectDisposedException) { return Silent.Instance; }   // the host is stopping
    }

    private sealed class Detacher(HostLogProvider owner, ILoggerFactory factory) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._gate) owner._live.Remove(factory);
        }
    }

    private sealed class Silent : ILog
    {
        public static readonly Silent Instance = new();
        public bool Log(Hangfire.Logging.LogLevel logLevel, Func<string>? messageFunc, Exception? exception = null) => false;
    }
}

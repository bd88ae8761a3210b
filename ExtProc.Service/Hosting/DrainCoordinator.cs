using ExtProc.Observability;
using Microsoft.Extensions.Options;

namespace ExtProc.Hosting;

/// <summary>
/// Tracks in-flight ext_proc streams for graceful shutdown: on SIGTERM readiness turns false, streams
/// keep being served for the drain delay and may finish within the drain timeout; whatever is still
/// open then ends UNAVAILABLE (never OK, which Envoy would read as "go on without the processor").
/// </summary>
internal sealed class DrainCoordinator : IDisposable
{
    private readonly CancellationTokenSource _deadline = new();
    private int _active;
    private volatile bool _draining;

    public bool IsDraining => _draining;

    public int ActiveStreams => Volatile.Read(ref _active);

    public StreamLease Enter(CancellationToken callToken)
    {
        Interlocked.Increment(ref _active);
        return new StreamLease(this, CancellationTokenSource.CreateLinkedTokenSource(callToken, _deadline.Token));
    }

    public void BeginDrain() => _draining = true;

    /// <summary>Ends every stream still open.</summary>
    public void Expire() => _deadline.Cancel();

    internal bool DeadlinePassed => _deadline.IsCancellationRequested;

    private void Leave() => Interlocked.Decrement(ref _active);

    public void Dispose() => _deadline.Dispose();

    /// <summary>One stream's registration; its token fires on client cancel or the drain deadline.</summary>
    internal sealed class StreamLease : IDisposable
    {
        private readonly DrainCoordinator _owner;
        private readonly CancellationTokenSource _linked;

        public StreamLease(DrainCoordinator owner, CancellationTokenSource linked)
        {
            _owner = owner;
            _linked = linked;
        }

        public CancellationToken Token => _linked.Token;

        public bool DrainExpired => _owner.DeadlinePassed;

        public void Dispose()
        {
            _linked.Dispose();
            _owner.Leave();
        }
    }
}

/// <summary>Runs the drain sequence when the host stops, before Kestrel stops listening.</summary>
internal sealed class DrainService : IHostedLifecycleService
{
    private readonly DrainCoordinator _drain;
    private readonly IOptions<ExtProcOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger<DrainService> _logger;
    private ITimer? _deadlineTimer;

    public DrainService(DrainCoordinator drain, IOptions<ExtProcOptions> options, TimeProvider time, ILogger<DrainService> logger)
    {
        _drain = drain;
        _options = options;
        _time = time;
        _logger = logger;
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        var drain = _options.Value.Drain;
        LifecycleLog.DrainStarted(_logger, drain.Delay, drain.Timeout);
        _drain.BeginDrain();
        if (drain.Delay > TimeSpan.Zero)
        {
            // Health checks now fail; keep serving until Envoy has stopped sending new streams here.
            await Task.Delay(drain.Delay, _time, cancellationToken).ConfigureAwait(false);
        }

        _deadlineTimer = _time.CreateTimer(static state => ((DrainService)state!).OnDeadline(), this, drain.Timeout, Timeout.InfiniteTimeSpan);
    }

    private void OnDeadline()
    {
        var open = _drain.ActiveStreams;
        if (open > 0)
        {
            LifecycleLog.DrainDeadline(_logger, open);
        }

        _drain.Expire();
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        _deadlineTimer?.Dispose();
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

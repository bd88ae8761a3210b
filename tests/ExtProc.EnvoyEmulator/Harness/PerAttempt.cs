using System.Runtime.CompilerServices;

namespace ExtProc.EnvoyEmulator.Harness;

/// <summary>
/// The route's <c>retry_policy</c> (<c>config.route.v3.RetryPolicy</c>) as far as failover tests need it.
/// <c>retry_on</c> values: <c>5xx</c>, <c>gateway-error</c>, <c>reset</c>, <c>connect-failure</c>,
/// <c>retriable-status-codes</c>.
/// </summary>
public sealed class RetryPolicy
{
    public HashSet<string> RetryOn { get; } = new(StringComparer.Ordinal);

    /// <summary><c>num_retries</c>: attempts after the first (Envoy's default is 1).</summary>
    public int NumRetries { get; set; } = 1;

    public List<int> RetriableStatusCodes { get; } = [];

    /// <summary><c>retry_back_off.base_interval</c> (Envoy default 25 ms).</summary>
    public TimeSpan BaseInterval { get; set; } = TimeSpan.FromMilliseconds(25);

    /// <summary><c>retry_back_off.max_interval</c>; zero means 10 × base, Envoy's default.</summary>
    public TimeSpan MaxInterval { get; set; }

    /// <summary>Mirrors <c>RetryStateImpl::wouldRetryFromHeaders</c> for plain HTTP.</summary>
    public bool WouldRetryStatus(int status) =>
        (RetryOn.Contains("5xx") && status >= 500)
        || (RetryOn.Contains("gateway-error") && status is 502 or 503 or 504)
        || (RetryOn.Contains("retriable-status-codes") && RetriableStatusCodes.Contains(status));

    /// <summary>Mirrors <c>RetryStateImpl::wouldRetryFromReset</c>: 5xx and gateway-error count a reset as a 5xx.</summary>
    public bool WouldRetryReset(UpstreamResetReason reason) =>
        RetryOn.Contains("reset") || RetryOn.Contains("5xx") || RetryOn.Contains("gateway-error")
        || (RetryOn.Contains("connect-failure") && reason == UpstreamResetReason.ConnectionFailure);

    /// <summary>Jittered exponential back-off: uniform in [0, min((2^n − 1) × base, max)) before retry n.</summary>
    public TimeSpan BackOff(int retry)
    {
        var max = MaxInterval > TimeSpan.Zero ? MaxInterval : BaseInterval * 10;
        var ceiling = BaseInterval * ((1L << Math.Min(retry, 30)) - 1);
        if (ceiling > max)
        {
            ceiling = max;
        }

        return ceiling <= TimeSpan.Zero ? TimeSpan.Zero : TimeSpan.FromTicks(Random.Shared.NextInt64(ceiling.Ticks));
    }
}

public enum UpstreamResetReason
{
    ConnectionFailure,
    RemoteReset,
}

/// <summary>
/// Per-attempt mode: the router retries with <see cref="Retry"/>, and each attempt runs the ext_proc filter
/// as an upstream HTTP filter (<see cref="Filter"/>, <c>IsUpstreamFilter</c> must be true) with its own
/// side stream.
/// </summary>
public sealed class PerAttemptOptions
{
    /// <summary>The upstream ext_proc filter; null runs attempts without one.</summary>
    public ExtProcFilterConfig? Filter { get; set; }

    public RetryPolicy Retry { get; set; } = new();

    /// <summary>
    /// Aggregate clusters (<c>envoy.clusters.aggregate</c>): name → member clusters in priority order. With the
    /// <c>previous_priorities</c> retry priority each retry moves to the next member, wrapping around.
    /// </summary>
    public Dictionary<string, List<string>> AggregateClusters { get; } = new(StringComparer.Ordinal);

    /// <summary>Route <c>include_attempt_count_in_request</c>: sets <c>x-envoy-attempt-count</c>.</summary>
    public bool IncludeAttemptCountInRequest { get; set; }

    /// <summary>
    /// Endpoint metadata of each cluster's host (<c>lb_endpoints[].metadata.filter_metadata</c>): cluster →
    /// namespace → key → string value. The upstream filter sees it through the CEL attribute
    /// <c>xds.upstream_host_metadata.filter_metadata['ns']['key']</c> once the router has picked the host.
    /// </summary>
    public Dictionary<string, Dictionary<string, Dictionary<string, string>>> HostMetadata { get; } = new(StringComparer.Ordinal);

    internal Dictionary<string, Google.Protobuf.WellKnownTypes.Value> HostAttributes(string cluster)
    {
        var values = new Dictionary<string, Google.Protobuf.WellKnownTypes.Value>(StringComparer.Ordinal);
        if (HostMetadata.TryGetValue(cluster, out var namespaces))
        {
            foreach (var (ns, entries) in namespaces)
            {
                foreach (var (key, value) in entries)
                {
                    values[$"xds.upstream_host_metadata.filter_metadata['{ns}']['{key}']"] = Google.Protobuf.WellKnownTypes.Value.ForString(value);
                }
            }
        }

        return values;
    }
}

/// <summary>One upstream attempt: the cluster, its own emulated upstream-filter stream, and what became of it.</summary>
public sealed class UpstreamAttempt
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal UpstreamAttempt(int number, string cluster, EmulatedStream stream)
    {
        Number = number;
        Cluster = cluster;
        Stream = stream;
    }

    /// <summary>1 for the first try.</summary>
    public int Number { get; }

    public string Cluster { get; }

    /// <summary>The upstream filter's stream: its log and stats are this attempt's side stream.</summary>
    public EmulatedStream Stream { get; }

    /// <summary>Status the attempt produced (0 for a reset before headers).</summary>
    public int Status { get; internal set; }

    /// <summary>"retried", "committed" or "failed".</summary>
    public string Outcome { get; internal set; } = "pending";

    /// <summary>Completes when the attempt's stream and side stream are over.</summary>
    public Task Completion => _done.Task;

    internal void MarkDone() => _done.TrySetResult();
}

/// <summary>
/// The router's retry loop as an <see cref="IUpstream"/> behind the downstream filter chain: it keeps a retry
/// buffer of the request body, starts one upstream-filter stream per attempt (replaying the buffer), and
/// hands back the first response it does not retry. Mirrors <c>Router::Filter</c>: retry on response headers
/// or reset before headers, never after the response was committed; a body over the buffer limit abandons
/// retries (<c>retry_or_shadow_abandoned</c>).
/// </summary>
internal sealed class RetryingUpstream : IUpstream, IDisposable
{
    private readonly PerAttemptOptions _options;
    private readonly ExtProcFilterConfig _filter;
    private readonly AttemptCodec _codec;
    private readonly TimeProvider _time;
    private readonly Action<UpstreamAttempt> _onAttempt;

    // One filter chain per cluster, reused by every attempt: like Envoy's, its gRPC connections to the
    // processor are pooled, so ending an attempt resets that attempt's side stream and nothing else.
    private readonly Dictionary<string, EnvoyEmulator> _chains = new(StringComparer.Ordinal);

    public RetryingUpstream(PerAttemptOptions options, IUpstream codec, TimeProvider time, Action<UpstreamAttempt> onAttempt)
    {
        _options = options;
        _filter = options.Filter ?? DataPlane.PassThroughFilter();
        if (options.Filter is not null && !options.Filter.IsUpstreamFilter)
        {
            throw new ArgumentException("The per-attempt filter config must set IsUpstreamFilter.", nameof(options));
        }

        _codec = new AttemptCodec(codec);
        _time = time;
        _onAttempt = onAttempt;
    }

    public async Task<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var members = _options.AggregateClusters.TryGetValue(request.Cluster, out var list) && list.Count > 0 ? list : [request.Cluster];
        var policy = _options.Retry;
        var buffer = new RetryBuffer(_filter.BufferLimitBytes);
        if (!request.EndStreamOnHeaders)
        {
            _ = buffer.FillAsync(request.Body, cancellationToken);
        }

        var retriesLeft = policy.NumRetries;
        for (var number = 1; ; number++)
        {
            var cluster = members[(number - 1) % members.Count];
            var emulator = ChainFor(cluster);
            var failure = new AttemptFailure();
            var headers = request.Headers.Clone();
            headers.Remove("transfer-encoding");
            if (_options.IncludeAttemptCountInRequest)
            {
                headers.Set("x-envoy-attempt-count", number.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            EmulatedStream stream;
            AttemptCodec.Current.Value = failure;
            try
            {
                stream = emulator.Start(new DownstreamRequest
                {
                    Headers = headers,
                    EndStreamOnHeaders = request.EndStreamOnHeaders,
                    Body = request.EndStreamOnHeaders ? null : buffer.ReadAsync(CancellationToken.None),
                    AttributeValues = _options.HostAttributes(cluster),
                }, cancellationToken);
            }
            finally
            {
                AttemptCodec.Current.Value = null;
            }

            var attempt = new UpstreamAttempt(number, cluster, stream);
            _onAttempt(attempt);

            HttpFrame? first;
            try
            {
                first = await stream.Downstream.WaitToReadAsync(cancellationToken) && stream.Downstream.TryRead(out var frame) ? frame : null;
            }
            catch
            {
                Abandon(stream, attempt, "failed");
                throw;
            }

            UpstreamResetReason? reset = null;
            if (first is HeadersFrame h)
            {
                attempt.Status = int.TryParse(h.Headers.Get(":status"), out var status) ? status : 0;

                // The emulator turns a codec failure into a router-style 503; in Envoy the router sees the
                // reset itself, so judge it as a reset.
                if (failure.Reason is { } reason && stream.ResponseCodeDetails != LocalReplyDetails.ViaUpstream)
                {
                    reset = reason;
                }
            }
            else
            {
                reset = failure.Reason ?? UpstreamResetReason.RemoteReset;
            }

            var retry = retriesLeft > 0 && !buffer.Overflowed
                && (reset is { } why ? policy.WouldRetryReset(why) : policy.WouldRetryStatus(attempt.Status));
            if (retry)
            {
                retriesLeft--;
                Abandon(stream, attempt, "retried");
                await Task.Delay(policy.BackOff(policy.NumRetries - retriesLeft), _time, cancellationToken);
                continue;
            }

            if (reset is not null || first is not HeadersFrame committed)
            {
                Abandon(stream, attempt, "failed");
                throw new HttpRequestException($"upstream reset before response started ({reset})");
            }

            attempt.Outcome = "committed";
            committed.Headers.Remove("transfer-encoding");
            if (committed.EndStream)
            {
                _ = CleanupAsync(stream, attempt);
                return new UpstreamResponse { Headers = committed.Headers, EndStreamOnHeaders = true };
            }

            return new UpstreamResponse { Headers = committed.Headers, Body = RestAsync(stream, attempt, cancellationToken) };
        }
    }

    private EnvoyEmulator ChainFor(string cluster)
    {
        lock (_chains)
        {
            if (!_chains.TryGetValue(cluster, out var chain))
            {
                chain = new EnvoyEmulator(_filter, _codec, RouteTable.SingleCluster(cluster), _time);
                _chains[cluster] = chain;
            }

            return chain;
        }
    }

    public void Dispose()
    {
        lock (_chains)
        {
            foreach (var chain in _chains.Values)
            {
                chain.Dispose();
            }

            _chains.Clear();
        }
    }

    private static void Abandon(EmulatedStream stream, UpstreamAttempt attempt, string outcome)
    {
        attempt.Outcome = outcome;

        // The router resets the attempt; its upstream filters (and side stream) go with it.
        stream.Abort();
        _ = CleanupAsync(stream, attempt);
    }

    private static async IAsyncEnumerable<HttpFrame> RestAsync(EmulatedStream stream, UpstreamAttempt attempt,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var ended = false;
        try
        {
            await foreach (var frame in stream.Downstream.ReadAllAsync(cancellationToken))
            {
                ended = frame is ResetFrame or TrailersFrame || frame is DataFrame { EndStream: true };
                yield return frame;
            }
        }
        finally
        {
            if (!ended)
            {
                stream.Abort();
            }

            _ = CleanupAsync(stream, attempt);
        }
    }

    private static async Task CleanupAsync(EmulatedStream stream, UpstreamAttempt attempt)
    {
        try
        {
            await stream.Completion.WaitAsync(TimeSpan.FromSeconds(5));
            await stream.SideStreamClosed.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            // The attempt is over for the router either way.
        }
        finally
        {
            attempt.MarkDone();
        }
    }

    /// <summary>How one attempt's codec call failed, if it did.</summary>
    private sealed class AttemptFailure
    {
        public UpstreamResetReason? Reason { get; set; }
    }

    /// <summary>
    /// Wraps the codec to learn how an attempt failed (the emulator only reports a 503). The attempt is found
    /// through the execution context its filter chain was started in.
    /// </summary>
    private sealed class AttemptCodec(IUpstream inner) : IUpstream
    {
        public static readonly AsyncLocal<AttemptFailure?> Current = new();

        public async Task<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
        {
            var failure = Current.Value ?? new AttemptFailure();
            UpstreamResponse response;
            try
            {
                response = await inner.SendAsync(request, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                failure.Reason = UpstreamResetReason.ConnectionFailure;
                throw;
            }

            return response.Body is null
                ? response
                : new UpstreamResponse { Headers = response.Headers, EndStreamOnHeaders = response.EndStreamOnHeaders, Body = WatchAsync(response.Body, failure, CancellationToken.None) };
        }

        private static async IAsyncEnumerable<HttpFrame> WatchAsync(IAsyncEnumerable<HttpFrame> body, AttemptFailure failure,
            [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await foreach (var frame in body.WithCancellation(cancellationToken))
            {
                if (frame is ResetFrame)
                {
                    failure.Reason ??= UpstreamResetReason.RemoteReset;
                }

                yield return frame;
            }
        }
    }
}

/// <summary>
/// The router's copy of the request body for retries: every frame is kept in order and each attempt reads
/// from the start, then follows the live tail.
/// </summary>
internal sealed class RetryBuffer(int limitBytes)
{
    private readonly List<HttpFrame> _frames = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _bytes;
    private bool _complete;

    /// <summary>The body outgrew the buffer limit: Envoy gives up on retries for this request.</summary>
    public bool Overflowed { get; private set; }

    public async Task FillAsync(IAsyncEnumerable<HttpFrame> source, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var frame in source.WithCancellation(cancellationToken))
            {
                Append(frame);
            }
        }
        catch (OperationCanceledException)
        {
            // The request is over.
        }
        catch (Exception ex)
        {
            Append(new ResetFrame(ex.Message));
        }
        finally
        {
            TaskCompletionSource changed;
            lock (_frames)
            {
                _complete = true;
                changed = _changed;
            }

            changed.TrySetResult();
        }
    }

    private void Append(HttpFrame frame)
    {
        TaskCompletionSource changed;
        lock (_frames)
        {
            _frames.Add(frame);
            if (frame is DataFrame data)
            {
                _bytes += data.Data.Length;
                Overflowed |= _bytes > limitBytes;
            }

            changed = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    public async IAsyncEnumerable<HttpFrame> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var index = 0;
        while (true)
        {
            HttpFrame? next = null;
            Task wait = Task.CompletedTask;
            var complete = false;
            lock (_frames)
            {
                if (index < _frames.Count)
                {
                    next = _frames[index++];
                }
                else if (_complete)
                {
                    complete = true;
                }
                else
                {
                    wait = _changed.Task;
                }
            }

            if (complete)
            {
                yield break;
            }

            if (next is not null)
            {
                yield return next;
            }
            else
            {
                await wait.WaitAsync(cancellationToken);
            }
        }
    }
}

using System.Collections.Frozen;
using ExtProc.Observability;
using ExtProc.Tenancy.Config;
using Microsoft.IdentityModel.Tokens;

namespace ExtProc.Tenancy.Jwt;

/// <summary>The verification keys of one issuer as last loaded.</summary>
internal sealed class JwksKeys
{
    public static readonly JwksKeys Empty = new([], DateTimeOffset.MinValue);

    public JwksKeys(IReadOnlyList<SecurityKey> keys, DateTimeOffset loadedAt)
    {
        Keys = keys;
        LoadedAt = loadedAt;
        var kids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            if (!string.IsNullOrEmpty(key.KeyId))
            {
                kids.Add(key.KeyId);
            }
        }

        KeyIds = kids.ToFrozenSet(StringComparer.Ordinal);
    }

    public IReadOnlyList<SecurityKey> Keys { get; }

    public FrozenSet<string> KeyIds { get; }

    public DateTimeOffset LoadedAt { get; }

    /// <summary>
    /// Reads a JWKS document, keeping only asymmetric signing keys: a symmetric ("oct") key in a
    /// public key set would let anyone who read the set forge tokens.
    /// </summary>
    public static JwksKeys Parse(string json, DateTimeOffset now)
    {
        var set = new JsonWebKeySet(json);
        var keys = new List<SecurityKey>();
        foreach (var key in set.Keys)
        {
            var asymmetric = key.Kty is JsonWebAlgorithmsKeyTypes.RSA or JsonWebAlgorithmsKeyTypes.EllipticCurve;
            var signing = string.IsNullOrEmpty(key.Use) || key.Use == "sig";
            if (asymmetric && signing)
            {
                keys.Add(key);
            }
        }

        return new JwksKeys(keys, now);
    }
}

/// <summary>
/// Keys of one JWKS source (file or URL), shared across config reloads. Refreshed when older than the
/// refresh interval (in the background, the old keys serve meanwhile), and once on an unknown
/// <c>kid</c>, but never more often than the minimum refresh interval, so unknown kids cannot be used
/// to hammer the issuer. Keys are fetched only from the configured URL, never from a token's
/// <c>jku</c>/<c>iss</c>.
/// </summary>
internal sealed class JwksCache
{
    private readonly object _gate = new();
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private JwksKeys _keys = JwksKeys.Empty;
    private Task<JwksKeys>? _refreshing;
    private DateTimeOffset _lastAttempt = DateTimeOffset.MinValue;

    public JwksCache(JwksSourceConfig source, HttpClient http, TimeProvider time, ILogger logger)
    {
        Source = source;
        _http = http;
        _time = time;
        _logger = logger;
    }

    public JwksSourceConfig Source { get; private set; }

    public JwksKeys Current => Volatile.Read(ref _keys);

    /// <summary>A reload may change the intervals of the same source.</summary>
    public void Update(JwksSourceConfig source) => Source = source;

    /// <summary>Loads a file source now (config load); false with the reason when it cannot.</summary>
    public bool TryLoadFile(out string? error)
    {
        error = null;
        try
        {
            var keys = JwksKeys.Parse(File.ReadAllText(Source.File!), _time.GetUtcNow());
            if (keys.Keys.Count == 0)
            {
                error = "the key set holds no RSA or EC signing key";
                return false;
            }

            Volatile.Write(ref _keys, keys);
            _lastAttempt = _time.GetUtcNow();
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or FormatException)
        {
            error = ex.Message;
            return false;
        }
    }

    /// <summary>The current keys; the first call for a URL source waits for the first fetch.</summary>
    public ValueTask<JwksKeys> GetAsync()
    {
        var keys = Current;
        var now = _time.GetUtcNow();
        if (keys.Keys.Count > 0)
        {
            if (now - keys.LoadedAt > Source.RefreshInterval)
            {
                _ = StartRefreshAsync(now);
            }

            return new ValueTask<JwksKeys>(keys);
        }

        var pending = StartRefreshAsync(now);
        return pending is null ? new ValueTask<JwksKeys>(keys) : new ValueTask<JwksKeys>(pending);
    }

    /// <summary>One refresh for a token whose kid we do not know, unless one ran too recently.</summary>
    public ValueTask<JwksKeys> RefreshForUnknownKeyAsync()
    {
        var pending = StartRefreshAsync(_time.GetUtcNow());
        return pending is null ? new ValueTask<JwksKeys>(Current) : new ValueTask<JwksKeys>(pending);
    }

    /// <summary>Starts (or joins) a refresh; null when rate-limited.</summary>
    internal Task<JwksKeys>? StartRefreshAsync(DateTimeOffset now)
    {
        lock (_gate)
        {
            if (_refreshing is { IsCompleted: false } running)
            {
                return running;
            }

            if (now - _lastAttempt < Source.MinRefreshInterval)
            {
                return null;
            }

            _lastAttempt = now;
            return _refreshing = RefreshAsync();
        }
    }

    private async Task<JwksKeys> RefreshAsync()
    {
        try
        {
            string json;
            if (Source.File is { } file)
            {
                json = await File.ReadAllTextAsync(file).ConfigureAwait(false);
            }
            else
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                json = await _http.GetStringAsync(Source.Url, timeout.Token).ConfigureAwait(false);
            }

            var keys = JwksKeys.Parse(json, _time.GetUtcNow());
            if (keys.Keys.Count == 0)
            {
                TenancyLog.JwksRefreshFailed(_logger, Source.SourceKey, "the key set holds no RSA or EC signing key");
                return Current;
            }

            Volatile.Write(ref _keys, keys);
            TenancyLog.JwksRefreshed(_logger, Source.SourceKey, keys.Keys.Count);
            return keys;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or FormatException
            or HttpRequestException or OperationCanceledException or InvalidOperationException)
        {
            // Keep serving the last good keys; a missing key set means tokens are refused, never accepted.
            TenancyLog.JwksRefreshFailed(_logger, Source.SourceKey, ex.GetType().Name + ": " + ex.Message);
            return Current;
        }
    }
}

/// <summary>JWKS caches by source, kept across config reloads.</summary>
internal sealed class JwksRegistry : IDisposable
{
    private readonly Dictionary<string, JwksCache> _caches = new(StringComparer.Ordinal);
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public JwksRegistry(TimeProvider time, ILogger logger, HttpMessageHandler? handler = null)
    {
        _time = time;
        _logger = logger;
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.Timeout = TimeSpan.FromSeconds(10);
        _http.DefaultRequestHeaders.Accept.ParseAdd("application/json");
    }

    public JwksCache Get(JwksSourceConfig source)
    {
        lock (_caches)
        {
            if (_caches.TryGetValue(source.SourceKey, out var cache))
            {
                cache.Update(source);
                return cache;
            }

            cache = new JwksCache(source, _http, _time, _logger);
            _caches[source.SourceKey] = cache;
            return cache;
        }
    }

    public void Dispose() => _http.Dispose();
}

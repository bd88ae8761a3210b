using System.Security.Cryptography;
using System.Text;
using ExtProc.Hosting;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Tenancy.Config;
using ExtProc.Tenancy.Jwt;
using Microsoft.Extensions.Options;

namespace ExtProc.Tenancy;

/// <summary>
/// Loads the configuration file (or the embedded sample), publishes the pipeline built from it, and
/// reloads on change: a file-system watcher for promptness plus a content poll for mounts where
/// watchers miss changes (Kubernetes ConfigMap symlink swaps). The first load must succeed or the
/// process does not start; a bad reload keeps the last good snapshot, logs every error and counts a
/// rejected reload. Streams already open keep the snapshot they started with.
/// </summary>
internal sealed class TenancyConfigProvider : IHostedService, IDisposable
{
    public const string EmbeddedResourceName = "ExtProc.Tenancy.default-config.yaml";

    private readonly object _gate = new();
    private readonly PipelineSnapshotProvider _snapshots;
    private readonly ExtProcOptions _options;
    private readonly PipelineServices _services;
    private readonly JwksRegistry _jwks;
    private readonly ILogger _logger;
    private FileSystemWatcher? _watcher;
    private ITimer? _poll;
    private ITimer? _debounce;
    private string? _appliedHash;

    public TenancyConfigProvider(
        PipelineSnapshotProvider snapshots,
        IOptions<ExtProcOptions> options,
        TimeProvider time,
        ILoggerFactory loggers,
        ExtProcMetrics metrics,
        JwksRegistry jwks)
    {
        _snapshots = snapshots;
        _options = options.Value;
        _services = new PipelineServices(time, loggers, metrics);
        _jwks = jwks;
        _logger = loggers.CreateLogger("ExtProc.Tenancy.Config");
    }

    /// <summary>Where the config comes from, for logs: the file path or "embedded default".</summary>
    public string Source => string.IsNullOrEmpty(_options.ConfigPath) ? "embedded default" : _options.ConfigPath;

    /// <summary>The errors of the last refused load, or null after a good one.</summary>
    public IReadOnlyList<string>? LastErrors { get; private set; }

    /// <summary>How many snapshots have been applied.</summary>
    public int Generation { get; private set; }

    public TenancySnapshot? Current => _snapshots.Current?.Tenancy;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!TryLoad(initial: true))
        {
            throw new InvalidOperationException(
                $"The configuration from {Source} is invalid:{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", LastErrors!));
        }

        if (!string.IsNullOrEmpty(_options.ConfigPath))
        {
            StartWatching(Path.GetFullPath(_options.ConfigPath));
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Reads and applies the configuration now; false (last good kept) when it is not valid.</summary>
    public bool TryLoad(bool initial = false)
    {
        lock (_gate)
        {
            string text;
            try
            {
                text = ReadSource();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return Refuse(initial, [$"(file): cannot read {Source}: {ex.Message}"]);
            }

            var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
            if (!initial && string.Equals(hash, _appliedHash, StringComparison.Ordinal))
            {
                return true; // unchanged content (a touch, or the poll after a watcher event)
            }

            var errors = new ConfigErrors();
            var tenancy = TenancySnapshot.Build(text, _jwks, _logger, errors);
            if (tenancy is null)
            {
                // Remember the refused content too, so a poll does not log it again until it changes.
                _appliedHash = hash;
                return Refuse(initial, errors.All);
            }

            _snapshots.Publish(PipelineSnapshot.Build(_options, tenancy, _services));
            _appliedHash = hash;
            LastErrors = null;
            Generation++;
            _services.Metrics.ConfigReload(applied: true);
            TenancyLog.ConfigLoaded(_logger, tenancy.Version, Source, tenancy.Tenants.Count, tenancy.KeyCount, tenancy.Config.Identity.JwtIssuers.Count);
            return true;
        }
    }

    private bool Refuse(bool initial, IReadOnlyList<string> errors)
    {
        LastErrors = errors;
        _services.Metrics.ConfigReload(applied: false);
        var joined = string.Join(" | ", errors);
        if (initial)
        {
            TenancyLog.ConfigRejected(_logger, Source, joined);
        }
        else
        {
            TenancyLog.ConfigReloadFailed(_logger, Source, Current?.Version ?? "none", joined);
        }

        return false;
    }

    private string ReadSource()
    {
        if (!string.IsNullOrEmpty(_options.ConfigPath))
        {
            return File.ReadAllText(_options.ConfigPath);
        }

        using var stream = typeof(TenancyConfigProvider).Assembly.GetManifestResourceStream(EmbeddedResourceName)
            ?? throw new IOException("the embedded default configuration is missing from the build");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    private void StartWatching(string fullPath)
    {
        var directory = Path.GetDirectoryName(fullPath)!;
        try
        {
            _watcher = new FileSystemWatcher(directory)
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
                IncludeSubdirectories = false,
            };
            _watcher.Changed += OnFileEvent;
            _watcher.Created += OnFileEvent;
            _watcher.Renamed += OnFileEvent;
            _watcher.EnableRaisingEvents = true;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or PlatformNotSupportedException)
        {
            // The poll below still picks up changes.
            _watcher?.Dispose();
            _watcher = null;
        }

        var time = _services.Time;
        _debounce = time.CreateTimer(static state => ((TenancyConfigProvider)state!).TryLoad(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        var interval = _options.ConfigPollInterval;
        if (interval > TimeSpan.Zero)
        {
            _poll = time.CreateTimer(static state => ((TenancyConfigProvider)state!).TryLoad(), this, interval, interval);
        }
    }

    // Editors and ConfigMap updates write in several steps: wait for the writes to settle.
    private void OnFileEvent(object sender, FileSystemEventArgs e) => _debounce?.Change(TimeSpan.FromMilliseconds(200), Timeout.InfiniteTimeSpan);

    public void Dispose()
    {
        _services.LimitStores.Dispose();
        _services.Mcp.Dispose();
        _services.CacheStores.Dispose();
        _watcher?.Dispose();
        _watcher = null;
        _poll?.Dispose();
        _debounce?.Dispose();
    }
}

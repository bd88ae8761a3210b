using System.ComponentModel.DataAnnotations;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Microsoft.Extensions.Options;

namespace ExtProc.Hosting;

/// <summary>Service settings, bound from the "ExtProc" configuration section.</summary>
internal sealed class ExtProcOptions
{
    public const string SectionName = "ExtProc";

    [ValidateObjectMembers]
    public GrpcListenerOptions Grpc { get; set; } = new();

    [ValidateObjectMembers]
    public AdminListenerOptions Admin { get; set; } = new();

    [ValidateObjectMembers]
    public EnvoyFilterOptions Envoy { get; set; } = new();

    public DrainOptions Drain { get; set; } = new();

    [ValidateObjectMembers]
    public ProtocolOptions Protocols { get; set; } = new();

    /// <summary>The tenancy configuration file (YAML or JSON); unset = the embedded sample.</summary>
    public string? ConfigPath { get; set; }

    /// <summary>How often the config file is re-read to catch changes a file watcher misses; zero = watcher only.</summary>
    public TimeSpan ConfigPollInterval { get; set; } = TimeSpan.FromSeconds(5);
}

internal sealed class GrpcListenerOptions
{
    /// <summary>h2c port Envoy's ext_proc cluster connects to; 0 picks a free port, -1 none (Unix socket only).</summary>
    [Range(-1, 65535)]
    public int Port { get; set; } = 50051;

    /// <summary>Loopback only by default; set to "*" (any) inside a pod.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>Also (or only, with Port -1) listen on this Unix socket.</summary>
    public string? UnixSocketPath { get; set; }

    /// <summary>Above Envoy's buffer limit plus protobuf overhead, so every body Envoy accepts reaches us.</summary>
    [Range(1024 * 1024, int.MaxValue)]
    public int MaxReceiveMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Largest body we read; larger ones get 413 body_too_large.</summary>
    [Range(1024, int.MaxValue)]
    public int MaxBodyBytes { get; set; } = 32 * 1024 * 1024;
}

internal sealed class AdminListenerOptions
{
    /// <summary>HTTP/1.1 port for /healthz and /readyz; 0 picks a free port.</summary>
    [Range(0, 65535)]
    public int Port { get; set; } = 9000;

    public string Host { get; set; } = "127.0.0.1";
}

/// <summary>What ExtProc must know of the Envoy filter config it is attached with (Envoy never sends it).</summary>
internal sealed class EnvoyFilterOptions
{
    /// <summary>Mirror of the filter's allow_mode_override; lets ungoverned requests skip their body.</summary>
    public bool AllowModeOverride { get; set; } = true;

    /// <summary>Mirror of the filter's message_timeout.</summary>
    public TimeSpan MessageTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Mirror of max_message_timeout; zero disables override_message_timeout.</summary>
    public TimeSpan MaxMessageTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>When a phase runs longer than this share of MessageTimeout, ask Envoy for MaxMessageTimeout.</summary>
    [Range(0.05, 0.95)]
    public double ExtendTimeoutAt { get; set; } = 0.5;

    /// <summary>Dynamic-metadata namespace we write (the filter's receiving_namespaces must list it).</summary>
    [Required]
    public string MetadataNamespace { get; set; } = "extproc";

    /// <summary>Body modes assumed when Envoy (older than 1.34) sends no protocol_config.</summary>
    public ProcessingMode.Types.BodySendMode RequestBodyMode { get; set; } = ProcessingMode.Types.BodySendMode.Buffered;

    public ProcessingMode.Types.BodySendMode ResponseBodyMode { get; set; } = ProcessingMode.Types.BodySendMode.None;
}

internal sealed class DrainOptions
{
    /// <summary>After SIGTERM: how long readiness is false while we still accept new streams.</summary>
    public TimeSpan Delay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Then: how long in-flight streams may take to finish before they end UNAVAILABLE.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);
}

internal sealed class ProtocolOptions
{
    /// <summary>Paths (and their sub-paths) served as MCP Streamable HTTP endpoints.</summary>
    public List<string> McpPaths { get; set; } = ["/mcp"];

    /// <summary>Deepest JSON nesting accepted in a request body (tool schemas can nest deep).</summary>
    [Range(16, 1024)]
    public int MaxJsonDepth { get; set; } = 128;
}

[OptionsValidator]
internal sealed partial class ExtProcOptionsValidator : IValidateOptions<ExtProcOptions>
{
}

/// <summary>Rules that span fields.</summary>
internal sealed class ExtProcOptionsCrossValidator : IValidateOptions<ExtProcOptions>
{
    public ValidateOptionsResult Validate(string? name, ExtProcOptions options)
    {
        var errors = new List<string>();
        if (options.Grpc.MaxBodyBytes >= options.Grpc.MaxReceiveMessageBytes)
        {
            errors.Add("ExtProc:Grpc:MaxBodyBytes must be below ExtProc:Grpc:MaxReceiveMessageBytes (room for protobuf framing).");
        }

        if (options.Envoy.MessageTimeout <= TimeSpan.Zero)
        {
            errors.Add("ExtProc:Envoy:MessageTimeout must be positive (mirror the filter's message_timeout).");
        }

        if (options.Envoy.MaxMessageTimeout != TimeSpan.Zero && options.Envoy.MaxMessageTimeout < options.Envoy.MessageTimeout)
        {
            errors.Add("ExtProc:Envoy:MaxMessageTimeout must be zero (disabled) or at least MessageTimeout.");
        }

        if (options.Grpc.Port < 0 && string.IsNullOrEmpty(options.Grpc.UnixSocketPath))
        {
            errors.Add("ExtProc:Grpc needs a Port or a UnixSocketPath.");
        }

        foreach (var path in options.Protocols.McpPaths)
        {
            if (string.IsNullOrEmpty(path) || path[0] != '/')
            {
                errors.Add($"ExtProc:Protocols:McpPaths entry '{path}' must start with '/'.");
            }
        }

        if (options.ConfigPollInterval < TimeSpan.Zero)
        {
            errors.Add("ExtProc:ConfigPollInterval must not be negative.");
        }

        if (!string.IsNullOrEmpty(options.ConfigPath) && !File.Exists(options.ConfigPath))
        {
            errors.Add($"ExtProc:ConfigPath '{options.ConfigPath}' does not exist.");
        }

        if (options.Drain.Delay < TimeSpan.Zero || options.Drain.Timeout < TimeSpan.Zero)
        {
            errors.Add("ExtProc:Drain:Delay and Timeout must not be negative.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

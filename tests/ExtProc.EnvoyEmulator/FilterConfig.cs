using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Google.Protobuf.WellKnownTypes;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;

namespace ExtProc.EnvoyEmulator;

/// <summary>Mirror of <c>ExternalProcessor.RouteCacheAction</c>.</summary>
public enum RouteCacheAction
{
    Default = 0,
    Clear = 1,
    Retain = 2,
}

/// <summary>Mirror of <c>config.common.mutation_rules.v3.HeaderMutationRules</c> (regexes as strings).</summary>
public sealed class MutationRulesConfig
{
    public bool AllowAllRouting { get; set; }

    public bool AllowEnvoy { get; set; }

    public bool DisallowSystem { get; set; }

    public bool DisallowAll { get; set; }

    /// <summary>RE2-style regex matched against the whole header name.</summary>
    public string? AllowExpression { get; set; }

    public string? DisallowExpression { get; set; }

    public bool DisallowIsError { get; set; }
}

/// <summary>Mirror of <c>MetadataOptions</c> (receiving typed metadata is unsupported by Envoy).</summary>
public sealed class MetadataOptionsConfig
{
    public List<string> ForwardingUntyped { get; } = [];

    public List<string> ForwardingTyped { get; } = [];

    public List<string> ReceivingUntyped { get; } = [];
}

/// <summary>Mirror of <c>HeaderForwardingRules</c>; matchers are exact, case-insensitive names.</summary>
public sealed class HeaderForwardingRulesConfig
{
    public List<string>? AllowedHeaders { get; set; }

    public List<string>? DisallowedHeaders { get; set; }

    public bool IsForwarded(string key)
    {
        if (AllowedHeaders is not null && !AllowedHeaders.Exists(h => string.Equals(h, key, StringComparison.OrdinalIgnoreCase)))
        {
            return false;
        }

        return DisallowedHeaders is null || !DisallowedHeaders.Exists(h => string.Equals(h, key, StringComparison.OrdinalIgnoreCase));
    }
}

/// <summary>Runtime guards of spec §1.7 that change the filter's behaviour.</summary>
public sealed class RuntimeGuards
{
    /// <summary><c>ext_proc_fail_close_spurious_resp</c>.</summary>
    public bool FailCloseSpuriousResp { get; set; } = true;

    /// <summary><c>ext_proc_stream_close_optimization</c>.</summary>
    public bool StreamCloseOptimization { get; set; } = true;

    /// <summary><c>ext_proc_timeout_error</c>: message timeout gives 504 (true) or 500 (false).</summary>
    public bool TimeoutError { get; set; } = true;

    /// <summary><c>ext_proc_graceful_grpc_close</c>: half-close and wait for the status (up to 1 s).</summary>
    public bool GracefulGrpcClose { get; set; }
}

/// <summary>EnvoyGrpc <c>retry_policy</c> of the side stream (spec §2.11).</summary>
public sealed class SideStreamRetryPolicy
{
    public int NumRetries { get; set; } = 1;

    /// <summary>gRPC status codes that trigger a retry before any reply arrived.</summary>
    public List<Grpc.Core.StatusCode> RetryOn { get; } = [Grpc.Core.StatusCode.ResourceExhausted];
}

/// <summary>
/// The ext_proc filter config (<c>envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor</c>, spec §1.5)
/// plus the Envoy-side knobs (HCM limits, buffer limit, runtime guards) that shape the filter's behaviour.
/// </summary>
public sealed class ExtProcFilterConfig
{
    /// <summary>
    /// Address(es) of the processor (<c>grpc_service</c>), e.g. http://127.0.0.1:5001. Later entries are the
    /// "other hosts" a retry may pick.
    /// </summary>
    public List<Uri> GrpcService { get; } = [];

    /// <summary>Set to emulate a config with <c>http_service</c> (only validated, not run).</summary>
    public bool HasHttpService { get; set; }

    /// <summary><c>GrpcService.initial_metadata</c>: headers added to the side stream.</summary>
    public List<KeyValuePair<string, string>> GrpcInitialMetadata { get; } = [];

    /// <summary>EnvoyGrpc <c>max_receive_message_length</c>; 0 = unlimited.</summary>
    public int MaxReceiveMessageLength { get; set; }

    public SideStreamRetryPolicy? RetryPolicy { get; set; }

    public ProcessingMode ProcessingMode { get; set; } = new();

    public bool FailureModeAllow { get; set; }

    public TimeSpan MessageTimeout { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Zero disables <c>override_message_timeout</c>.</summary>
    public TimeSpan MaxMessageTimeout { get; set; }

    public bool AllowModeOverride { get; set; }

    public List<ProcessingMode> AllowedOverrideModes { get; } = [];

    public List<string> RequestAttributes { get; } = [];

    public List<string> ResponseAttributes { get; } = [];

    public MutationRulesConfig MutationRules { get; set; } = new();

    /// <summary><c>status_on_error</c>: code for gRPC errors, spurious messages, mutation errors.</summary>
    public int StatusOnError { get; set; } = 500;

    public bool SendBodyWithoutWaitingForHeaderResponse { get; set; }

    public bool ObservabilityMode { get; set; }

    public TimeSpan DeferredCloseTimeout { get; set; } = TimeSpan.FromMilliseconds(5000);

    public bool DisableImmediateResponse { get; set; }

    public RouteCacheAction RouteCacheAction { get; set; }

    public bool DisableClearRouteCache { get; set; }

    public MetadataOptionsConfig MetadataOptions { get; set; } = new();

    public HeaderForwardingRulesConfig? ForwardRules { get; set; }

    /// <summary>True when the filter runs as an upstream (per-attempt) HTTP filter.</summary>
    public bool IsUpstreamFilter { get; set; }

    // Envoy-side knobs.

    /// <summary>Connection/route buffer limit (<c>per_connection_buffer_limit_bytes</c>).</summary>
    public int BufferLimitBytes { get; set; } = 1024 * 1024;

    /// <summary>HCM <c>common_http_protocol_options.max_headers_count</c>.</summary>
    public int MaxHeadersCount { get; set; } = 100;

    /// <summary>HCM <c>max_request_headers_kb</c>.</summary>
    public int MaxRequestHeadersKb { get; set; } = 60;

    /// <summary>HCM <c>stream_idle_timeout</c>; zero disables it.</summary>
    public TimeSpan StreamIdleTimeout { get; set; } = TimeSpan.FromMinutes(5);

    public RuntimeGuards Runtime { get; set; } = new();

    /// <summary>Protocol of the downstream connection (HTTP/1 switches to chunked without content-length).</summary>
    public HttpProtocol DownstreamProtocol { get; set; } = HttpProtocol.Http2;

    /// <summary>Protocol of the upstream connection.</summary>
    public HttpProtocol UpstreamProtocol { get; set; } = HttpProtocol.Http2;

    /// <summary>
    /// Checks Envoy applies when loading the config (spec §1.6). Throws <see cref="FilterConfigException"/>
    /// with Envoy's message.
    /// </summary>
    /// <summary>
    /// The filter as <c>envoy/envoy.yaml</c> ships it: headers both ways, request body BUFFERED, response body
    /// NONE (ExtProc lifts it with mode_override), trailers SKIP, 1 s / 10 s timeouts, fail closed, namespace
    /// <c>extproc</c> received.
    /// </summary>
    public static ExtProcFilterConfig AsShipped(Uri processor)
    {
        var config = new ExtProcFilterConfig
        {
            ProcessingMode = new ProcessingMode
            {
                RequestHeaderMode = HeaderSendMode.Send,
                ResponseHeaderMode = HeaderSendMode.Send,
                RequestBodyMode = BodySendMode.Buffered,
                ResponseBodyMode = BodySendMode.None,
                RequestTrailerMode = HeaderSendMode.Skip,
                ResponseTrailerMode = HeaderSendMode.Skip,
            },
            FailureModeAllow = false,
            AllowModeOverride = true,
            MessageTimeout = TimeSpan.FromSeconds(1),
            MaxMessageTimeout = TimeSpan.FromSeconds(10),
        };
        config.GrpcService.Add(processor);
        config.MetadataOptions.ReceivingUntyped.Add("extproc");
        return config;
    }

    public void Validate()
    {
        if ((GrpcService.Count > 0) == HasHttpService)
        {
            throw new FilterConfigException("One and only one of grpc_service or http_service must be configured");
        }

        if (DisableClearRouteCache && RouteCacheAction != RouteCacheAction.Default)
        {
            throw new FilterConfigException(
                "disable_clear_route_cache and route_cache_action can not be set to none-default at the same time.");
        }

        var mode = ProcessingMode;
        CheckDefined(mode);
        if (HasHttpService && (mode.RequestBodyMode != BodySendMode.None || mode.ResponseBodyMode != BodySendMode.None
            || mode.RequestTrailerMode == HeaderSendMode.Send || mode.ResponseTrailerMode == HeaderSendMode.Send))
        {
            throw new FilterConfigException(
                "If the ext_proc filter is configured with http_service instead of gRPC service, then the processing modes of this filter can not be configured to send body or trailer.");
        }

        if (mode.RequestBodyMode == BodySendMode.FullDuplexStreamed && mode.RequestTrailerMode != HeaderSendMode.Send)
        {
            throw new FilterConfigException(
                "If the ext_proc filter has the request_body_mode set to FULL_DUPLEX_STREAMED, then the request_trailer_mode has to be set to SEND");
        }

        if (mode.ResponseBodyMode == BodySendMode.FullDuplexStreamed && mode.ResponseTrailerMode != HeaderSendMode.Send)
        {
            throw new FilterConfigException(
                "If the ext_proc filter has the response_body_mode set to FULL_DUPLEX_STREAMED, then the response_trailer_mode has to be set to SEND");
        }

        if (MessageTimeout < TimeSpan.Zero || MessageTimeout > TimeSpan.FromSeconds(3600))
        {
            throw new FilterConfigException("message_timeout: value must be inside range [0s, 3600s]");
        }

        if (MaxMessageTimeout < TimeSpan.Zero || MaxMessageTimeout > TimeSpan.FromSeconds(3600))
        {
            throw new FilterConfigException("max_message_timeout: value must be inside range [0s, 3600s]");
        }

        foreach (var allowed in AllowedOverrideModes)
        {
            CheckDefined(allowed);
        }
    }

    private static void CheckDefined(ProcessingMode mode)
    {
        // PGV defined_only on every enum field.
        if (!System.Enum.IsDefined(mode.RequestHeaderMode) || !System.Enum.IsDefined(mode.ResponseHeaderMode)
            || !System.Enum.IsDefined(mode.RequestTrailerMode) || !System.Enum.IsDefined(mode.ResponseTrailerMode)
            || !System.Enum.IsDefined(mode.RequestBodyMode) || !System.Enum.IsDefined(mode.ResponseBodyMode))
        {
            throw new FilterConfigException("processing_mode: value must be one of the defined enum values");
        }
    }

    internal static Duration ToDuration(TimeSpan span) => Duration.FromTimeSpan(span);
}

public sealed class FilterConfigException(string message) : Exception(message);

using ExtProc.Tests.Wire;

namespace ExtProc.Tests.EnvoyConfig;

/// <summary>
/// Envoy's config API compiled from the pinned npm copy: the bootstrap plus every typed_config type our configs
/// use. An "@type" outside this set is reported as unknown; add its proto here when a config starts using one.
/// </summary>
internal static class EnvoyApiSchema
{
    public const string Bootstrap = "envoy.config.bootstrap.v3.Bootstrap";

    public static readonly string[] Files =
    [
        "envoy/config/bootstrap/v3/bootstrap.proto",
        "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
        "envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto",
        "envoy/extensions/filters/http/router/v3/router.proto",
        "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
        "envoy/extensions/transport_sockets/tls/v3/tls.proto",
        "envoy/extensions/filters/http/upstream_codec/v3/upstream_codec.proto",
        "envoy/extensions/clusters/aggregate/v3/cluster.proto",
        "envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto",
    ];

    private static readonly Lazy<DescriptorIndex> s_index = new(static () =>
        new DescriptorIndex(Protoc.CompileDescriptorSet(UpstreamEnvoyApi.ConfigIncludeDirs, Files).File));

    public static DescriptorIndex Index => s_index.Value;
}

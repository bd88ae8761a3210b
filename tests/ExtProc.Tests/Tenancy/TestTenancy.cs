using Envoy.Service.ExtProc.V3;
using ExtProc.Envoy;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;
using ExtProc.Tenancy.Jwt;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Engine;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ExtProc.Tests.Tenancy;

/// <summary>Keys, configs and engine snapshots with identity for tests. Keys are made fresh per test run.</summary>
internal static class TestTenancy
{
    public static readonly string AcmeKey = ApiKeyFormat.NewKey("acme-main");
    public static readonly string AcmeNarrowKey = ApiKeyFormat.NewKey("acme-narrow");
    public static readonly string AcmeRevokedKey = ApiKeyFormat.NewKey("acme-old");
    public static readonly string AcmeExpiredKey = ApiKeyFormat.NewKey("acme-expired");
    public static readonly string BetaKey = ApiKeyFormat.NewKey("beta-main");

    /// <summary>The config most tests use: two tenants, keys of each kind, an mTLS mapping.</summary>
    public static string BaseYaml(string identity = "") => $$"""
        version: 1
        tenants:
          acme:
            displayName: Acme
            policy:
              models: ["gpt-4o*", "claude-*", "gemini-2.0-*"]
              providers: [openai, anthropic]
              mcp:
                tools: ["echo", "get-*"]
                methods: ["tools/list", "tools/call"]
              limits: [acme-default]
            keys:
              - id: acme-main
                hash: "{{ApiKeyFormat.HashText(AcmeKey)}}"
              - id: acme-narrow
                hash: "{{ApiKeyFormat.HashText(AcmeNarrowKey)}}"
                scope:
                  models: ["gpt-4o-mini"]
                  limits: [acme-narrow]
              - id: acme-old
                hash: "{{ApiKeyFormat.HashText(AcmeRevokedKey)}}"
                revoked: true
              - id: acme-expired
                hash: "{{ApiKeyFormat.HashText(AcmeExpiredKey)}}"
                expiresAt: "2020-01-01T00:00:00Z"
          beta:
            keys:
              - id: beta-main
                hash: "{{ApiKeyFormat.HashText(BetaKey)}}"
          public: {}
        {{identity}}
        """;

    /// <summary>
    /// The config of the hosted test process unless a test asks otherwise: the same tenants, and requests
    /// without any credential become tenant "public" (identity.anonymous), so engine and data-plane tests
    /// need not carry keys. Wrong credentials are still refused.
    /// </summary>
    public static string OpenYaml => BaseYaml("identity:\n  anonymous:\n    tenant: public\n");

    public static TenancySnapshot Tenancy(string yaml, JwksRegistry? jwks = null, ILogger? logger = null)
    {
        var errors = new ConfigErrors();
        var snapshot = TenancySnapshot.Build(yaml, jwks ?? new JwksRegistry(TimeProvider.System, logger ?? NullLoggerInstance), logger ?? NullLoggerInstance, errors);
        Assert.True(snapshot is not null, string.Join("\n", errors.All));
        return snapshot!;
    }

    public static PipelineSnapshot BuildPipeline(string yaml, FakeLogCollector? logs = null, JwksRegistry? jwks = null, TimeProvider? time = null)
    {
        var factory = LoggerFactory.Create(b =>
        {
            b.SetMinimumLevel(LogLevel.Trace);
            if (logs is not null)
            {
                b.AddProvider(new FakeLoggerProvider(logs));
            }
        });
        var tenancy = Tenancy(yaml, jwks, factory.CreateLogger("test"));
        return PipelineSnapshot.Build(EngineTestKit.Options(), tenancy, new PipelineServices(time ?? TimeProvider.System, factory, new ExtProcMetrics()));
    }

    public static (StreamProcessor Processor, RecordingWriter Writer) Processor(PipelineSnapshot snapshot) => EngineTestKit.Processor(snapshot);

    /// <summary>Sends request headers and returns the one reply.</summary>
    public static async Task<ProcessingResponse> HeadersAsync(PipelineSnapshot snapshot, string path, string method = "POST",
        string? contentType = "application/json", params (string Key, string Value)[] extra)
    {
        var (processor, writer) = Processor(snapshot);
        await processor.HandleAsync(EngineTestKit.RequestHeaders(path, method: method, contentType: method == "GET" ? null : contentType, extra: extra));
        return Assert.Single(writer.Responses);
    }

    private static readonly ILogger NullLoggerInstance = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
}

using System.Text;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Tests.Hosting;
using ExtProc.Translation;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Translation;

/// <summary>
/// The data plane the SDK translation tests go through: the harness (HCM + emulated ext_proc filter +
/// router) in front of the real ExtProc, configured with one provider of the direction's upstream format
/// (or OpenAI-compatible dialect) serving the public models the SDKs ask for, and a loopback upstream that
/// answers with a provider fixture — SSE written in 37-byte flushed pieces, so ExtProc sees arbitrary chunk
/// boundaries. ExtProc's routing stage does the translation both ways, as in production.
/// </summary>
internal sealed class TranslatingHop : IAsyncDisposable
{
    private readonly ExtProcServer _extProc;
    private readonly LoopbackUpstream _upstream;
    private readonly DataPlane _plane;
    private readonly string _secretFile;

    private TranslatingHop(ExtProcServer extProc, LoopbackUpstream upstream, DataPlane plane, string secretFile, string requestId)
    {
        _extProc = extProc;
        _upstream = upstream;
        _plane = plane;
        _secretFile = secretFile;
        RequestId = requestId;
    }

    /// <summary>The virtual key the SDKs present (a tenant of its own).</summary>
    public static readonly string Key = ExtProc.Tenancy.Keys.ApiKeyFormat.NewKey("hop");

    public Uri BaseUri => _plane.BaseUri;

    /// <summary>The x-request-id the client must send: it seeds the ids a translator synthesises (Gemini tool calls).</summary>
    public string RequestId { get; }

    /// <summary>The translated request body the upstream received last.</summary>
    public byte[]? LastUpstreamRequest => _upstream.Received.Count == 0 ? null : _upstream.Received[^1].Body;

    public static async Task<TranslatingHop> StartAsync(string direction, RequestTranslationInput input, byte[] buffered, byte[] stream)
    {
        var upstreamKind = direction[(direction.IndexOf("-to-", StringComparison.Ordinal) + 4)..];
        var (schema, dialect) = upstreamKind switch
        {
            "anthropic" => ("anthropic", "standard"),
            "gemini" or "gemini-legacy" => ("gemini", "standard"),
            "openai" => ("openai", "standard"),
            _ => ("openai", upstreamKind),
        };
        var secretFile = Path.Combine(Path.GetTempPath(), $"extproc-hop-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(secretFile, "sk-provider-secret");
        var yaml = $$"""
            version: 1
            tenants:
              sdk:
                keys:
                  - id: hop
                    hash: "{{ExtProc.Tenancy.Keys.ApiKeyFormat.HashText(Key)}}"
            providers:
              up:
                schema: {{schema}}
                dialect: {{dialect}}
                cluster: up
                credential: { file: "{{secretFile}}" }
            models:
              gpt-4o: { targets: [{ provider: up, model: {{input.UpstreamModel}} }] }
              claude-sonnet-4-5: { targets: [{ provider: up, model: {{input.UpstreamModel}} }] }
            """;
        var extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: yaml);
        var upstream = await LoopbackUpstream.StartAsync(request =>
        {
            var streaming = request.Path.Contains(":streamGenerateContent", StringComparison.Ordinal)
                || Encoding.UTF8.GetString(request.Body).Contains("\"stream\":true", StringComparison.Ordinal);
            if (!streaming)
            {
                return new LoopbackResponse { Headers = [new("content-type", "application/json")], Body = buffered };
            }

            var pieces = new List<SseEvent>();
            for (var offset = 0; offset < stream.Length; offset += 37)
            {
                pieces.Add(new SseEvent(Encoding.UTF8.GetString(stream, offset, Math.Min(37, stream.Length - offset))));
            }

            return new LoopbackResponse { Headers = [new("content-type", "text/event-stream")], Events = pieces };
        });
        var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            DefaultCluster = "no-route",
            Clusters = { ["up"] = upstream.BaseUri },
        });
        return new TranslatingHop(extProc, upstream, plane, secretFile, input.RequestId);
    }

    public async ValueTask DisposeAsync()
    {
        await _plane.DisposeAsync();
        await _upstream.DisposeAsync();
        Assert.Empty(UnexpectedErrors(_extProc));
        await _extProc.DisposeAsync();
        File.Delete(_secretFile);
    }
}

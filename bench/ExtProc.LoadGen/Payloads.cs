using System.Globalization;
using System.Text;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;

namespace ExtProc.LoadGen;

/// <summary>One request shape of the load mix.</summary>
/// <summary>What the canned provider answers a mix with.</summary>
internal enum Answer
{
    /// <summary>The chat completion JSON.</summary>
    Completion,

    /// <summary>An SSE chat stream of <see cref="Payloads.SseEvents"/> chunks.</summary>
    Sse,

    /// <summary>A JSON-RPC tools/call result.</summary>
    McpResult,
}

internal sealed record Mix(string Name, string Method, string Path, byte[]? Body, Answer Answer = Answer.Completion)
{
    public HttpHeaderList Headers()
    {
        // As Envoy's HCM hands them to the filter chain: pseudo-headers first, lower-case names.
        var headers = new HttpHeaderList()
            .Add(":scheme", "https")
            .Add(":method", Method)
            .Add(":authority", "gateway.example.com")
            .Add(":path", Path)
            .Add("user-agent", "OpenAI/Python 1.54.3")
            .Add("accept", "application/json")
            .Add("authorization", "Bearer " + Payloads.BenchKey);
        if (Answer == Answer.McpResult)
        {
            // Streamable HTTP: the client accepts both answer forms and names the protocol version.
            headers.Set("accept", "application/json, text/event-stream");
            headers.Add("mcp-protocol-version", "2025-06-18");
        }

        if (Body is not null)
        {
            headers.Add("content-type", "application/json");
            headers.Add("content-length", Body.Length.ToString(CultureInfo.InvariantCulture));
        }

        return headers
            .Add("x-forwarded-proto", "https")
            .Add("x-request-id", "6f2c9a8e-1b4d-4f7a-9c3e-2d5b8a7f1e60");
    }
}

internal static class Payloads
{
    public const string ChatPath = "/v1/chat/completions";

    /// <summary>The virtual key every load request carries; ExtProc's config (<see cref="ExtProcConfig"/>) knows its hash.</summary>
    public const string BenchKey = "xp_loadgen_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    public const string ProviderKeyVariable = "EXTPROC_LOADGEN_PROVIDER_KEY";

    /// <summary>One tenant with the bench key; gpt-4o-mini routed to two weighted OpenAI-format targets.</summary>
    public static string ExtProcConfig() => $$"""
        version: 1
        tenants:
          bench:
            keys:
              - id: loadgen
                hash: "{{ExtProc.Tenancy.Keys.ApiKeyFormat.HashText(BenchKey)}}"
        providers:
          openai: { schema: openai, cluster: openai, regions: [us], credential: { env: {{ProviderKeyVariable}} } }
          openai-eu: { schema: openai, cluster: openai, regions: [eu], credential: { env: {{ProviderKeyVariable}} } }
        models:
          gpt-4o-mini:
            targets:
              - { provider: openai, model: gpt-4o-mini-2024-07-18, weight: 3 }
              - { provider: openai-eu, model: gpt-4o-mini-2024-07-18, weight: 1 }
        """;

    /// <summary>A non-streamed OpenAI chat completion (what the mock provider answers).</summary>
    public static readonly byte[] Completion = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-bench","object":"chat.completion","created":1795000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"The rollback was caused by a failing health check; a longer drain delay fixed it."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":18,"total_tokens":60}}""");

    public static IReadOnlyList<Mix> Mixes(IReadOnlyCollection<string>? only)
    {
        var all = new List<Mix>
        {
            new("headers-only GET", "GET", "/api/orders/42?expand=items", null),
            new("chat 200 B", "POST", ChatPath, ChatBody(200)),
            new("chat 10 KB", "POST", ChatPath, ChatBody(10 * 1024)),
            new("chat 100 KB", "POST", ChatPath, ChatBody(100 * 1024)),
            new("chat SSE (16 events)", "POST", ChatPath, StreamingChatBody(), Answer.Sse),
            new("MCP tools/call", "POST", McpPath, McpCall, Answer.McpResult),
        };
        return only is null || only.Count == 0
            ? all
            : all.FindAll(m => only.Contains(Key(m)));
    }

    public static string Key(Mix mix) => mix.Name switch
    {
        "headers-only GET" => "headers",
        "chat 200 B" => "200b",
        "chat 10 KB" => "10kb",
        "chat 100 KB" => "100kb",
        "chat SSE (16 events)" => "sse",
        _ => "mcp",
    };

    public const string McpPath = "/mcp";

    public const int SseEvents = 16;

    /// <summary>An MCP tools/call over Streamable HTTP (2025-06-18), as an agent sends it.</summary>
    public static readonly byte[] McpCall = Encoding.UTF8.GetBytes(
        """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"lookup_order","arguments":{"id":"42","fields":["state","owner"]}}}""");

    public static readonly byte[] McpResult = Encoding.UTF8.GetBytes(
        """{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"order 42: shipped, owner ops-team"}],"isError":false}}""");

    /// <summary>The 200 B chat request with <c>"stream":true</c>.</summary>
    public static byte[] StreamingChatBody() =>
        Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(ChatBody(200)).Replace("\"stream\":false", "\"stream\":true", StringComparison.Ordinal));

    /// <summary>One chunk of the canned chat stream (the last one carries finish_reason, then [DONE]).</summary>
    public static byte[] SseChunk(int index) => Encoding.UTF8.GetBytes(index < SseEvents - 1
        ? $$"""data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1795000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"token {{index}} "},"finish_reason":null}]}""" + "\n\n"
        : """data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1795000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}""" + "\n\ndata: [DONE]\n\n");

    /// <summary>
    /// The filter as <c>envoy/envoy.yaml</c> configures it: request and response headers SENT, request body
    /// BUFFERED, no response body, no trailers, 1 s message timeout, fail closed.
    /// </summary>
    public static ExtProcFilterConfig FilterConfig(Uri processor)
    {
        var config = ExtProcFilterConfig.AsShipped(processor);
        config.DownstreamProtocol = HttpProtocol.Http1;
        config.UpstreamProtocol = HttpProtocol.Http1;
        return config;
    }

    /// <summary>A deterministic, valid OpenAI chat request of about <paramref name="approximateBytes"/>:
    /// a conversation history, plus a tool list when large (an agent turn).</summary>
    public static byte[] ChatBody(int approximateBytes)
    {
        var json = new StringBuilder(approximateBytes + 1024);
        json.Append("""{"model":"gpt-4o-mini","stream":false,"messages":[{"role":"user","content":"Why did the deploy roll back?"}""");
        var withTools = approximateBytes >= 50_000;
        var historyBytes = withTools ? approximateBytes / 4 : approximateBytes;
        for (var turn = 0; json.Length + 240 < historyBytes; turn++)
        {
            json.Append(CultureInfo.InvariantCulture,
                $$""",{"role":"{{(turn % 2 == 0 ? "assistant" : "user")}}","content":"Turn {{turn}}: step {{turn}} rolled back after two failed health checks; a longer drain delay made it pass."}""");
        }

        // Below one history turn (~200 B): pad with a system prompt to the size asked for.
        var pad = approximateBytes - json.Length - 60;
        if (historyBytes < 400 && pad > 0)
        {
            json.Append(""",{"role":"system","content":"Answer briefly.""").Append(' ', pad).Append("\"}");
        }

        json.Append(']');
        if (withTools)
        {
            json.Append(""","tools":[""");
            for (var tool = 0; json.Length + 520 < approximateBytes; tool++)
            {
                json.Append(tool > 0 ? "," : string.Empty);
                var id = tool.ToString(CultureInfo.InvariantCulture);
                json.Append("""{"type":"function","function":{"name":"lookup_""").Append(id)
                    .Append("\",\"description\":\"Returns record ").Append(id)
                    .Append(""" of the inventory: state, owner, last change.","parameters":{"type":"object","properties":{"id":{"type":"string"},"fields":{"type":"array","items":{"type":"string"}},"limit":{"type":"integer","minimum":1,"maximum":100}},"required":["id"]}}}""");
            }

            json.Append(']');
        }

        json.Append(",\"max_tokens\":256}");
        return Encoding.UTF8.GetBytes(json.ToString());
    }
}

using System.Globalization;
using System.Text;
using Google.Protobuf;
using BodySendMode = global::Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using EnvoyCore = global::Envoy.Config.Core.V3;
using EnvoyExtProc = global::Envoy.Service.ExtProc.V3;

namespace ExtProc.Benchmarks.Engine;

/// <summary>
/// ext_proc messages as Envoy sends them (lower-case keys, raw_value only, protocol_config on the first
/// message), built once per benchmark and reused for every operation: the engine never mutates them.
/// </summary>
internal static class ExtProcMessages
{
    public const string ChatPath = "/v1/chat/completions";

    public static EnvoyExtProc.ProcessingRequest RequestHeaders(
        string method,
        string path,
        string? contentType,
        bool endOfStream,
        BodySendMode requestMode,
        BodySendMode responseMode,
        int? contentLength = null)
    {
        var map = new EnvoyCore.HeaderMap();
        Add(map, ":scheme", "https");
        Add(map, ":method", method);
        Add(map, ":authority", "gateway.example.com");
        Add(map, ":path", path);
        Add(map, "user-agent", "OpenAI/Python 1.54.3");
        Add(map, "accept", "application/json");
        Add(map, "authorization", "Bearer " + EngineSetup.BenchKey);
        if (contentType is not null)
        {
            Add(map, "content-type", contentType);
        }

        if (contentLength is { } length)
        {
            Add(map, "content-length", length.ToString(CultureInfo.InvariantCulture));
        }

        Add(map, "x-forwarded-proto", "https");
        Add(map, "x-forwarded-for", "10.1.2.3");
        Add(map, "x-request-id", "6f2c9a8e-1b4d-4f7a-9c3e-2d5b8a7f1e60");
        Add(map, "x-envoy-expected-rq-timeout-ms", "60000");
        return new EnvoyExtProc.ProcessingRequest
        {
            RequestHeaders = new EnvoyExtProc.HttpHeaders { Headers = map, EndOfStream = endOfStream },
            MetadataContext = new EnvoyCore.Metadata(),
            ProtocolConfig = new EnvoyExtProc.ProtocolConfiguration { RequestBodyMode = requestMode, ResponseBodyMode = responseMode },
        };
    }

    public static EnvoyExtProc.ProcessingRequest ResponseHeaders(string contentType, int? contentLength, bool endOfStream = false)
    {
        var map = new EnvoyCore.HeaderMap();
        Add(map, ":status", "200");
        Add(map, "content-type", contentType);
        if (contentLength is { } length)
        {
            Add(map, "content-length", length.ToString(CultureInfo.InvariantCulture));
        }

        Add(map, "date", "Tue, 24 Nov 2026 14:00:00 GMT");
        Add(map, "openai-processing-ms", "312");
        Add(map, "x-request-id", "req_0123456789abcdef");
        Add(map, "x-envoy-upstream-service-time", "315");
        return new EnvoyExtProc.ProcessingRequest
        {
            ResponseHeaders = new EnvoyExtProc.HttpHeaders { Headers = map, EndOfStream = endOfStream },
            MetadataContext = new EnvoyCore.Metadata(),
        };
    }

    public static EnvoyExtProc.ProcessingRequest RequestBody(ReadOnlySpan<byte> body, bool endOfStream) => new()
    {
        RequestBody = new EnvoyExtProc.HttpBody { Body = ByteString.CopyFrom(body), EndOfStream = endOfStream },
        MetadataContext = new EnvoyCore.Metadata(),
    };

    public static EnvoyExtProc.ProcessingRequest ResponseBody(ReadOnlySpan<byte> body, bool endOfStream) => new()
    {
        ResponseBody = new EnvoyExtProc.HttpBody { Body = ByteString.CopyFrom(body), EndOfStream = endOfStream },
        MetadataContext = new EnvoyCore.Metadata(),
    };

    /// <summary><paramref name="body"/> cut into chunks of <paramref name="chunkSize"/> bytes, the last one ending the stream.</summary>
    public static EnvoyExtProc.ProcessingRequest[] RequestBodyChunks(byte[] body, int chunkSize)
    {
        var count = (body.Length + chunkSize - 1) / chunkSize;
        var chunks = new EnvoyExtProc.ProcessingRequest[count];
        for (var i = 0; i < count; i++)
        {
            var start = i * chunkSize;
            var length = Math.Min(chunkSize, body.Length - start);
            chunks[i] = RequestBody(body.AsSpan(start, length), endOfStream: i == count - 1);
        }

        return chunks;
    }

    /// <summary>
    /// An OpenAI chat completion request of about <paramref name="approximateBytes"/>: a short chat
    /// (~200 B), an agent turn with history (~10 KB), or a request with a large tool list (~100 KB).
    /// Deterministic, valid JSON.
    /// </summary>
    public static byte[] ChatBody(int approximateBytes)
    {
        var json = new StringBuilder(approximateBytes + 1024);
        json.Append("""{"model":"gpt-4o-mini","max_tokens":256,"temperature":0.2,"stream":false,"messages":[""");
        json.Append("""{"role":"user","content":"Summarise the attached incident report in two sentences, please."}""");
        var tools = approximateBytes >= 50_000;
        var historyTarget = tools ? approximateBytes / 5 : approximateBytes;
        var turn = 0;
        while (json.Length + 300 < historyTarget)
        {
            var role = turn % 2 == 0 ? "assistant" : "user";
            json.Append(CultureInfo.InvariantCulture, $$"""
                ,{"role":"{{role}}","content":"Turn {{turn}}: the deployment at step {{turn}} rolled back because the health check on port 9000 failed twice; the on-call engineer reran it with a longer drain delay and it passed."}
                """);
            turn++;
        }

        json.Append(']');
        if (tools)
        {
            json.Append(""","tools":[""");
            var tool = 0;
            while (json.Length + 700 < approximateBytes)
            {
                if (tool > 0)
                {
                    json.Append(',');
                }

                json.Append("""
                    {"type":"function","function":{"name":"tool_#","description":"Looks up record # in the inventory service and returns its current state, owner and last change.","parameters":{"type":"object","properties":{"id":{"type":"string","description":"Record identifier"},"fields":{"type":"array","items":{"type":"string"}},"include_history":{"type":"boolean"},"limit":{"type":"integer","minimum":1,"maximum":100}},"required":["id"]}}}
                    """.Replace("#", tool.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
                tool++;
            }

            json.Append(']');
        }

        json.Append('}');
        return Encoding.UTF8.GetBytes(json.ToString());
    }

    /// <summary>One SSE event of a streamed chat completion; the last chunk is <c>data: [DONE]</c>.</summary>
    public static byte[] SseChunk(int index, bool last) => Encoding.UTF8.GetBytes(last
        ? "data: [DONE]\n\n"
        : string.Create(CultureInfo.InvariantCulture, $$"""
            data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1795000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" token{{index}}"},"finish_reason":null}]}


            """));

    private static void Add(EnvoyCore.HeaderMap map, string key, string value) =>
        map.Headers.Add(new EnvoyCore.HeaderValue { Key = key, RawValue = ByteString.CopyFromUtf8(value) });
}

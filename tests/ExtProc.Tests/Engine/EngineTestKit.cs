using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Service.ExtProc.V3;
using ExtProc.Envoy;
using ExtProc.Hosting;
using ExtProc.Pipeline;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;
using Metadata = Envoy.Config.Core.V3.Metadata;

namespace ExtProc.Tests.Engine;

/// <summary>Builds ext_proc messages the way Envoy does and records what the engine answers.</summary>
internal static class EngineTestKit
{
    public const string SampleChatBody = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi \u00e9 there"}],"stream":false}""";

    public static ProcessingRequest RequestHeaders(string path, string method = "POST", string? contentType = "application/json",
        bool endOfStream = false, BodySendMode? requestMode = BodySendMode.Buffered, BodySendMode responseMode = BodySendMode.None,
        params (string Key, string Value)[] extra)
    {
        var map = new HeaderMap();
        Add(map, ":scheme", "http");
        Add(map, ":method", method);
        Add(map, ":authority", "gateway.local");
        Add(map, ":path", path);
        Add(map, "x-forwarded-proto", "http");
        Add(map, "x-request-id", "req-1");
        if (contentType is not null)
        {
            Add(map, "content-type", contentType);
        }

        foreach (var (key, value) in extra)
        {
            Add(map, key, value);
        }

        var message = new ProcessingRequest
        {
            RequestHeaders = new HttpHeaders { Headers = map, EndOfStream = endOfStream },
            MetadataContext = new Metadata(),
        };
        if (requestMode is { } mode)
        {
            message.ProtocolConfig = new ProtocolConfiguration { RequestBodyMode = mode, ResponseBodyMode = responseMode };
        }

        return message;
    }

    public static ProcessingRequest ResponseHeaders(int status = 200, string contentType = "application/json", bool endOfStream = false)
    {
        var map = new HeaderMap();
        Add(map, ":status", status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Add(map, "content-type", contentType);
        return new ProcessingRequest
        {
            ResponseHeaders = new HttpHeaders { Headers = map, EndOfStream = endOfStream },
            MetadataContext = new Metadata(),
        };
    }

    public static ProcessingRequest RequestBody(ReadOnlySpan<byte> body, bool endOfStream) => new()
    {
        RequestBody = new HttpBody { Body = ByteString.CopyFrom(body), EndOfStream = endOfStream },
        MetadataContext = new Metadata(),
    };

    public static ProcessingRequest ResponseBody(ReadOnlySpan<byte> body, bool endOfStream) => new()
    {
        ResponseBody = new HttpBody { Body = ByteString.CopyFrom(body), EndOfStream = endOfStream },
        MetadataContext = new Metadata(),
    };

    public static ProcessingRequest RequestTrailers(params (string Key, string Value)[] trailers)
    {
        var map = new HeaderMap();
        foreach (var (key, value) in trailers)
        {
            Add(map, key, value);
        }

        return new ProcessingRequest { RequestTrailers = new HttpTrailers { Trailers = map }, MetadataContext = new Metadata() };
    }

    public static void Add(HeaderMap map, string key, string value) =>
        map.Headers.Add(new HeaderValue { Key = key, RawValue = ByteString.CopyFromUtf8(value) });

    public static ExtProcOptions Options(Action<ExtProcOptions>? configure = null)
    {
        var options = new ExtProcOptions();
        configure?.Invoke(options);
        return options;
    }

    public static (StreamProcessor Processor, RecordingWriter Writer) Processor(PipelineSnapshot snapshot, TimeProvider? time = null)
    {
        var writer = new RecordingWriter();
        var processor = new StreamProcessor(snapshot, writer, time ?? TimeProvider.System, NullLogger.Instance, CancellationToken.None);
        return (processor, writer);
    }

    public static PipelineSnapshot DefaultSnapshot(Action<ExtProcOptions>? configure = null) => PipelineSnapshot.Build(Options(configure));

    public static string Header(HeaderMutation mutation, string name)
    {
        foreach (var option in mutation.SetHeaders)
        {
            if (option.Header.Key == name)
            {
                return option.Header.RawValue.ToStringUtf8();
            }
        }

        throw new Xunit.Sdk.XunitException($"header {name} not set");
    }

    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
}

internal sealed class RecordingWriter : IServerStreamWriter<ProcessingResponse>
{
    public List<ProcessingResponse> Responses { get; } = [];

    public WriteOptions? WriteOptions { get; set; }

    public Task WriteAsync(ProcessingResponse message)
    {
        // Clone: the engine reuses cached replies; tests must see each write as it was.
        Responses.Add(message.Clone());
        return Task.CompletedTask;
    }
}

/// <summary>A stage scripted by a test.</summary>
internal sealed class ScriptedStage : Stage
{
    public Func<ProcessingContext, ProcessingPhase, ValueTask<StageResult>>? OnPhase { get; init; }

    public List<(ProcessingPhase Phase, string Body, bool Complete)> Seen { get; } = [];

    public bool NeedsRequestBody { get; init; }

    public bool NeedsResponseBody { get; init; }

    public override string Name => "scripted";

    public override ValueTask<StageResult> OnRequestHeadersAsync(ProcessingContext context)
    {
        context.RequestBody.Needed = NeedsRequestBody;
        return Run(context, ProcessingPhase.RequestHeaders);
    }

    public override ValueTask<StageResult> OnRequestBodyAsync(ProcessingContext context) => Run(context, ProcessingPhase.RequestBody);

    public override ValueTask<StageResult> OnRequestTrailersAsync(ProcessingContext context) => Run(context, ProcessingPhase.RequestTrailers);

    public override ValueTask<StageResult> OnResponseHeadersAsync(ProcessingContext context)
    {
        context.ResponseBody.Needed = NeedsResponseBody;
        return Run(context, ProcessingPhase.ResponseHeaders);
    }

    public override ValueTask<StageResult> OnResponseBodyAsync(ProcessingContext context) => Run(context, ProcessingPhase.ResponseBody);

    public override ValueTask<StageResult> OnResponseTrailersAsync(ProcessingContext context) => Run(context, ProcessingPhase.ResponseTrailers);

    private ValueTask<StageResult> Run(ProcessingContext context, ProcessingPhase phase)
    {
        var body = phase switch
        {
            ProcessingPhase.RequestBody => context.RequestBody,
            ProcessingPhase.ResponseBody => context.ResponseBody,
            _ => null,
        };
        Seen.Add((phase, body is null ? "" : Encoding.UTF8.GetString(body.Content.Span), body?.Complete ?? false));
        return OnPhase?.Invoke(context, phase) ?? default;
    }
}

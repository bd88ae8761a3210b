using Envoy.Config.Core.V3;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Envoy.Service.ExtProc.V3;
using Envoy.Type.V3;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

// Deprecated fields (HeaderValueOption.append, HttpHeaders.attributes) still travel on the wire, so they are covered here.
#pragma warning disable CS0612

namespace ExtProc.Tests.Wire;

/// <summary>Rich messages built with our types, using every field the 2024 npm copy also knows.</summary>
internal static class SampleMessages
{
    public static IEnumerable<(string Name, IMessage Message)> ForUpstreamNpmCopy()
    {
        const string request = "envoy.service.ext_proc.v3.ProcessingRequest";
        const string response = "envoy.service.ext_proc.v3.ProcessingResponse";

        yield return ($"{request} request_headers", new ProcessingRequest
        {
            RequestHeaders = new HttpHeaders
            {
                Headers = Headers((":method", "POST"), (":path", "/v1/messages"), ("content-type", "application/json")),
                EndOfStream = false,
            },
            MetadataContext = new Metadata
            {
                FilterMetadata = { ["extproc"] = Struct.Parser.ParseJson("""{"tenant":"t1","n":1.5,"ok":true,"none":null,"list":[1,"a",{"x":false}]}""") },
                TypedFilterMetadata = { ["typed"] = Any.Pack(new Duration { Seconds = 7 }) },
            },
            Attributes = { ["envoy.filters.http.ext_proc"] = Struct.Parser.ParseJson("""{"request.id":"abc","source.address":"10.0.0.1:1234"}""") },
        });
        yield return ($"{request} response_headers", new ProcessingRequest
        {
            ResponseHeaders = new HttpHeaders
            {
                Headers = new HeaderMap { Headers = { new HeaderValue { Key = "x-raw", RawValue = ByteString.CopyFrom(0xC3, 0x28, 0x00, 0xFF) }, new HeaderValue { Key = "legacy", Value = "v" } } },
                EndOfStream = true,
                Attributes = { ["deprecated"] = new Struct() },
            },
            MetadataContext = new Metadata(),
            ObservabilityMode = true,
        });
        yield return ($"{request} request_body", new ProcessingRequest { RequestBody = new HttpBody { Body = ByteString.CopyFromUtf8("{\"model\":\"gpt\"}"), EndOfStream = true }, MetadataContext = new Metadata() });
        yield return ($"{request} response_body", new ProcessingRequest { ResponseBody = new HttpBody { Body = ByteString.CopyFrom(new byte[] { 0, 1, 2, 255 }), EndOfStream = false } });
        yield return ($"{request} request_trailers", new ProcessingRequest { RequestTrailers = new HttpTrailers { Trailers = Headers(("x-t", "1")) } });
        yield return ($"{request} response_trailers", new ProcessingRequest { ResponseTrailers = new HttpTrailers { Trailers = Headers(("grpc-status", "0")) } });

        yield return ($"{response} request_headers", new ProcessingResponse
        {
            RequestHeaders = new HeadersResponse
            {
                Response = new CommonResponse
                {
                    Status = CommonResponse.Types.ResponseStatus.ContinueAndReplace,
                    HeaderMutation = new HeaderMutation
                    {
                        SetHeaders =
                        {
                            new HeaderValueOption { Header = new HeaderValue { Key = "x-extproc-cluster", RawValue = ByteString.CopyFromUtf8("anthropic") } },
                            new HeaderValueOption
                            {
                                Header = new HeaderValue { Key = "x-add", RawValue = ByteString.CopyFromUtf8("1") },
                                Append = false,
                                AppendAction = HeaderValueOption.Types.HeaderAppendAction.AddIfAbsent,
                                KeepEmptyValue = true,
                            },
                        },
                        RemoveHeaders = { "authorization", "x-api-key" },
                    },
                    BodyMutation = new BodyMutation { Body = ByteString.CopyFromUtf8("{\"replaced\":true}") },
                    Trailers = Headers(("x-unused", "1")),
                    ClearRouteCache = true,
                },
            },
            DynamicMetadata = Struct.Parser.ParseJson("""{"extproc":{"tenant":"t1","cost":0.25}}"""),
            ModeOverride = new ProcessingMode
            {
                RequestHeaderMode = ProcessingMode.Types.HeaderSendMode.Send,
                ResponseHeaderMode = ProcessingMode.Types.HeaderSendMode.Skip,
                RequestBodyMode = ProcessingMode.Types.BodySendMode.BufferedPartial,
                ResponseBodyMode = ProcessingMode.Types.BodySendMode.Streamed,
                RequestTrailerMode = ProcessingMode.Types.HeaderSendMode.Default,
                ResponseTrailerMode = ProcessingMode.Types.HeaderSendMode.Send,
            },
        });
        yield return ($"{response} response_body clear_body", new ProcessingResponse
        {
            ResponseBody = new BodyResponse { Response = new CommonResponse { BodyMutation = new BodyMutation { ClearBodyFlag = true } } },
        });
        yield return ($"{response} request_body timeout", new ProcessingResponse
        {
            RequestBody = new BodyResponse { Response = new CommonResponse() },
            OverrideMessageTimeout = new Duration { Seconds = 2, Nanos = 5 },
        });
        yield return ($"{response} trailers", new ProcessingResponse
        {
            ResponseTrailers = new TrailersResponse { HeaderMutation = new HeaderMutation { RemoveHeaders = { "x-t" } } },
        });
        yield return ($"{response} request_trailers", new ProcessingResponse { RequestTrailers = new TrailersResponse() });
        yield return ($"{response} response_headers", new ProcessingResponse { ResponseHeaders = new HeadersResponse() });
        yield return ($"{response} immediate_response", new ProcessingResponse
        {
            ImmediateResponse = new ImmediateResponse
            {
                Status = new HttpStatus { Code = StatusCode.TooManyRequests },
                Headers = new HeaderMutation { SetHeaders = { new HeaderValueOption { Header = new HeaderValue { Key = "retry-after", RawValue = ByteString.CopyFromUtf8("3") } } } },
                Body = ByteString.CopyFromUtf8("{\"error\":\"rate limited\"}"),
                GrpcStatus = new GrpcStatus { Status = 8 },
                Details = "extproc rate limited",
            },
            DynamicMetadata = Struct.Parser.ParseJson("""{"extproc":{"denied":true}}"""),
        });
    }

    private static HeaderMap Headers(params (string Key, string Value)[] entries)
    {
        var map = new HeaderMap();
        foreach (var (key, value) in entries)
        {
            map.Headers.Add(new HeaderValue { Key = key, RawValue = ByteString.CopyFromUtf8(value) });
        }

        return map;
    }
}

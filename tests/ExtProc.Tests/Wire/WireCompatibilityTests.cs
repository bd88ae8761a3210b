using System.Text.RegularExpressions;
using Envoy.Config.Core.V3;
using Envoy.Extensions.Filters.Http.ExtProc.V3;
using Envoy.Service.ExtProc.V3;
using Envoy.Type.V3;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using FieldType = Google.Protobuf.Reflection.FieldDescriptorProto.Types.Type;

// Deprecated fields (HeaderValueOption.append, HttpHeaders.attributes) still travel on the wire, so they are covered here.
#pragma warning disable CS0612

namespace ExtProc.Tests.Wire;

/// <summary>
/// Proves our own protos (protos/envoy/...) are wire-compatible with Envoy's upstream definitions: descriptor by
/// descriptor against the npm copy (data-plane-api 2024-04), against a spec table for what that copy predates, and
/// by pushing real bytes through protoc with the upstream files.
/// </summary>
public sealed partial class WireCompatibilityTests
{
    private const string ServiceFile = "envoy/service/ext_proc/v3/external_processor.proto";
    private const string ProcessingModeFile = "envoy/extensions/filters/http/ext_proc/v3/processing_mode.proto";
    private const string HttpStatusFile = "envoy/type/v3/http_status.proto";
    private const string ServicePkg = "envoy.service.ext_proc.v3";
    private const string ModePkg = "envoy.extensions.filters.http.ext_proc.v3";
    private const string BodySendMode = ModePkg + ".ProcessingMode.BodySendMode";

    // The one allowed difference. Upstream's `bool clear_body = 2` sits in a oneof beside `bytes body = 1`, whose
    // generated C# ClearBody() method collides with the property for clear_body (CS0102). Names never travel on the
    // binary wire, so ours is clear_body_flag (spec §7.3).
    internal static readonly AllowedRename[] Renames =
    [
        new($"{ServicePkg}.BodyMutation", 2, "clear_body", "clear_body_flag", "C# name collision with the generated ClearBody() of oneof member body"),
    ];

    // Fields newer than the npm copy (spec §1.2, §1.3, §7.1), written from the spec: Envoy 1.34-1.37 additions.
    internal static readonly FieldSpec[] NewerFields =
    [
        new($"{ServicePkg}.ProcessingRequest", 11, "protocol_config", FieldType.Message, $"{ServicePkg}.ProtocolConfiguration"),
        new($"{ServicePkg}.ProtocolConfiguration", 1, "request_body_mode", FieldType.Enum, BodySendMode),
        new($"{ServicePkg}.ProtocolConfiguration", 2, "response_body_mode", FieldType.Enum, BodySendMode),
        new($"{ServicePkg}.ProtocolConfiguration", 3, "send_body_without_waiting_for_header_response", FieldType.Bool),
        new($"{ServicePkg}.BodyMutation", 3, "streamed_response", FieldType.Message, $"{ServicePkg}.StreamedBodyResponse", Oneof: "mutation"),
        new($"{ServicePkg}.StreamedBodyResponse", 1, "body", FieldType.Bytes),
        new($"{ServicePkg}.StreamedBodyResponse", 2, "end_of_stream", FieldType.Bool),
        new($"{ServicePkg}.StreamedBodyResponse", 3, "end_of_stream_without_message", FieldType.Bool),
        new($"{ServicePkg}.StreamedBodyResponse", 4, "grpc_message_compressed", FieldType.Bool),
        new($"{ServicePkg}.HttpBody", 3, "end_of_stream_without_message", FieldType.Bool),
        new($"{ServicePkg}.HttpBody", 4, "grpc_message_compressed", FieldType.Bool),
        new($"{ServicePkg}.ProcessingResponse", 11, "streamed_immediate_response", FieldType.Message, $"{ServicePkg}.StreamedImmediateResponse", Oneof: "response"),
        new($"{ServicePkg}.ProcessingResponse", 12, "request_drain", FieldType.Bool),
        new($"{ServicePkg}.StreamedImmediateResponse", 1, "headers_response", FieldType.Message, $"{ServicePkg}.HttpHeaders", Oneof: "response"),
        new($"{ServicePkg}.StreamedImmediateResponse", 2, "body_response", FieldType.Message, $"{ServicePkg}.StreamedBodyResponse", Oneof: "response"),
        new($"{ServicePkg}.StreamedImmediateResponse", 3, "trailers_response", FieldType.Message, "envoy.config.core.v3.HeaderMap", Oneof: "response"),
    ];

    internal static readonly EnumValueSpec[] NewerEnumValues =
    [
        new(BodySendMode, "FULL_DUPLEX_STREAMED", 4),
        new(BodySendMode, "GRPC", 5),
    ];

    // base.proto is trimmed on our side to the four messages that cross the ext_proc wire (spec §7.3).
    private static readonly string[] s_baseTypes =
    [
        "envoy.config.core.v3.HeaderValue",
        "envoy.config.core.v3.HeaderValueOption",
        "envoy.config.core.v3.HeaderMap",
        "envoy.config.core.v3.Metadata",
    ];

    private static readonly Lazy<DescriptorIndex> s_upstream = new(() => new DescriptorIndex(
        Protoc.CompileDescriptorSet(UpstreamEnvoyApi.IncludeDirs, [ServiceFile, ProcessingModeFile]).File));

    private static readonly FileDescriptor[] s_ourFiles =
    [
        ExternalProcessorReflection.Descriptor,
        ProcessingModeReflection.Descriptor,
        BaseReflection.Descriptor,
        HttpStatusReflection.Descriptor,
    ];

    private static string OurProtosDir => TestRepo.PathOf("protos");

    [Fact]
    public void OurDescriptors_ComparedWithUpstreamNpmCopy_HaveNoMismatch()
    {
        var (upstreamScope, ourTypes) = Scope(OurDescriptorIndex());

        var mismatches = new WireComparer(s_upstream.Value, OurDescriptorIndex(), NewerFields, NewerEnumValues, Renames)
            .Compare(upstreamScope, ourTypes);

        Assert.True(mismatches.Count == 0,
            $"{mismatches.Count} wire mismatch(es) between protos/ and {UpstreamEnvoyApi.PackageName}@{UpstreamEnvoyApi.PackageVersion}:{Environment.NewLine}  "
            + string.Join(Environment.NewLine + "  ", mismatches));
    }

    [Fact]
    public void ComparisonScope_UpstreamNpmCopy_CoversTheWholeServiceFile()
    {
        var (upstreamScope, _) = Scope(OurDescriptorIndex());

        // Guards against a vacuous pass: every upstream message of the wire contract is in scope.
        foreach (var name in new[]
                 {
                     $"{ServicePkg}.ExternalProcessor", $"{ServicePkg}.ProcessingRequest", $"{ServicePkg}.ProcessingResponse",
                     $"{ServicePkg}.HttpHeaders", $"{ServicePkg}.HttpBody", $"{ServicePkg}.HttpTrailers", $"{ServicePkg}.HeadersResponse",
                     $"{ServicePkg}.BodyResponse", $"{ServicePkg}.TrailersResponse", $"{ServicePkg}.CommonResponse",
                     $"{ServicePkg}.CommonResponse.ResponseStatus", $"{ServicePkg}.ImmediateResponse", $"{ServicePkg}.GrpcStatus",
                     $"{ServicePkg}.HeaderMutation", $"{ServicePkg}.BodyMutation", $"{ModePkg}.ProcessingMode",
                     $"{ModePkg}.ProcessingMode.HeaderSendMode", BodySendMode, "envoy.type.v3.HttpStatus", "envoy.type.v3.StatusCode",
                     "envoy.config.core.v3.HeaderValueOption.HeaderAppendAction", "envoy.config.core.v3.Metadata.FilterMetadataEntry",
                 })
        {
            Assert.Contains(name, upstreamScope);
        }

        // The 2024 npm copy predates the table's fields; if it ever gains them the comparer checks them against upstream too.
        Assert.Null(s_upstream.Value.FindMessage($"{ServicePkg}.StreamedBodyResponse"));
        Assert.True(s_upstream.Value.Enums[BodySendMode].Value.Count >= 4);
    }

    [Fact]
    public void Comparer_InjectedDifferences_ReportsEachOne()
    {
        // Proves the comparer is not blind: damage a copy of our descriptors and expect every damage reported.
        var files = OurFileProtos().Select(static f => f.Clone()).ToList();
        var service = files.Single(f => f.Name == ServiceFile);
        var request = service.MessageType.Single(m => m.Name == "ProcessingRequest");
        request.Field.Single(f => f.Name == "observability_mode").Number = 13;
        request.ReservedRange.Clear();
        var body = service.MessageType.Single(m => m.Name == "HttpBody");
        body.Field.Single(f => f.Name == "body").Type = FieldType.String;
        var headers = service.MessageType.Single(m => m.Name == "HttpHeaders");
        headers.Field.Single(f => f.Name == "end_of_stream").Label = FieldDescriptorProto.Types.Label.Repeated;
        var mutation = service.MessageType.Single(m => m.Name == "BodyMutation");
        mutation.Field.Single(f => f.Name == "body").ClearOneofIndex();
        var common = service.MessageType.Single(m => m.Name == "CommonResponse");
        common.EnumType.Single().Value.Single(v => v.Name == "CONTINUE_AND_REPLACE").Number = 7;
        common.Field.Single(f => f.Name == "trailers").TypeName = ".envoy.config.core.v3.HeaderValue";
        service.Service.Single().Method.Single().ServerStreaming = false;
        // Newer fields are held to the spec table the same way.
        service.MessageType.Single(m => m.Name == "ProtocolConfiguration").Field.Single(f => f.Number == 1).Type = FieldType.Int32;
        service.MessageType.Single(m => m.Name == "ProcessingResponse").Field.Single(f => f.Name == "request_drain").Number = 13;
        var mode = files.Single(f => f.Name == ProcessingModeFile).MessageType.Single().EnumType.Single(e => e.Name == "BodySendMode");
        mode.Value.Remove(mode.Value.Single(v => v.Name == "GRPC"));
        var damaged = new DescriptorIndex(files);
        var (scope, ourTypes) = Scope(damaged);

        var mismatches = new WireComparer(s_upstream.Value, damaged, NewerFields, NewerEnumValues, Renames).Compare(scope, ourTypes);

        string[] expected =
        [
            "ProcessingRequest #10 (observability_mode): field missing in ours",
            "ProcessingRequest #13 (observability_mode): field in ours is neither upstream nor in the newer-field table",
            "ProcessingRequest: reserved range [1, 2) missing in ours",
            "HttpBody #1 (body): type upstream Bytes, ours String",
            "HttpHeaders #3 (end_of_stream): label upstream Optional, ours Repeated",
            "BodyMutation #1 (body): oneof upstream 'mutation', ours '(none)'",
            "CommonResponse.ResponseStatus.CONTINUE_AND_REPLACE = 1: enum value missing in ours",
            "CommonResponse #4 (trailers): type name upstream",
            "ExternalProcessor.Process: streaming upstream client=True server=True, ours client=True server=False",
            "ProtocolConfiguration #1 (request_body_mode): type spec table Enum, ours Int32",
            "ProcessingResponse #12 (request_drain): newer field from the spec table is missing in ours",
            "ProcessingResponse #13 (request_drain): field in ours is neither upstream nor in the newer-field table",
            "BodySendMode.GRPC = 5: newer enum value from the spec table is missing in ours",
        ];
        foreach (var fragment in expected)
        {
            Assert.True(mismatches.Any(m => m.Contains(fragment, StringComparison.Ordinal)),
                $"expected a mismatch containing '{fragment}'; got:{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", mismatches)}");
        }
    }

    [Fact]
    public void Comparer_RenameOtherThanAllowed_IsReported()
    {
        var files = OurFileProtos().Select(static f => f.Clone()).ToList();
        var service = files.Single(f => f.Name == ServiceFile);
        service.MessageType.Single(m => m.Name == "GrpcStatus").Field.Single().Name = "code";
        var renamed = new DescriptorIndex(files);
        var (scope, ourTypes) = Scope(renamed);

        var mismatches = new WireComparer(s_upstream.Value, renamed, NewerFields, NewerEnumValues, Renames).Compare(scope, ourTypes);

        var only = Assert.Single(mismatches);
        Assert.Contains("GrpcStatus #1 (status): name upstream 'status', ours 'code'", only, StringComparison.Ordinal);
    }

    public static TheoryData<string, byte[]> OldSubsetMessages()
    {
        var data = new TheoryData<string, byte[]>();
        foreach (var (name, message) in SampleMessages.ForUpstreamNpmCopy())
        {
            data.Add(name, message.ToByteArray());
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(OldSubsetMessages))]
    public void OurBytes_DecodedByProtocWithUpstreamFiles_EqualOurDecodeWithNoUnknownFields(string typeAndCase, byte[] bytes)
    {
        var type = typeAndCase.Split(' ')[0];

        var upstreamText = Protoc.Decode(type, UpstreamEnvoyApi.IncludeDirs, ServiceFile, bytes);
        var ourText = Protoc.Decode(type, [OurProtosDir], ServiceFile, bytes);

        // A field upstream does not know, or knows with another kind, prints as "<number>: ..." in text format.
        var unknown = UnknownFieldRegex().Matches(upstreamText).Select(static m => m.Value.Trim()).ToList();
        Assert.True(unknown.Count == 0, $"upstream sees unknown fields {string.Join(", ", unknown)} in:{Environment.NewLine}{upstreamText}");
        Assert.Equal(ourText.Replace("clear_body_flag:", "clear_body:", StringComparison.Ordinal), upstreamText);
        Assert.True(upstreamText.Length > 20, "decode produced (almost) nothing; the sample is not exercising the wire");
    }

    [Fact]
    public void UpstreamEncodedResponse_ParsedByOurTypes_EqualsTheSameMessageBuiltWithOurs()
    {
        // Written in upstream's vocabulary (clear_body, not clear_body_flag) and encoded by protoc from upstream's files.
        const string text = """
            request_body {
              response {
                status: CONTINUE_AND_REPLACE
                header_mutation {
                  set_headers { header { key: "x-extproc-cluster" raw_value: "openai" } append { value: true } append_action: OVERWRITE_IF_EXISTS keep_empty_value: true }
                  remove_headers: "authorization"
                }
                body_mutation { clear_body: true }
                trailers { headers { key: "grpc-status" raw_value: "0" } }
                clear_route_cache: true
              }
            }
            dynamic_metadata { fields { key: "extproc" value { struct_value { fields { key: "tokens" value { number_value: 42 } } } } } }
            mode_override { request_body_mode: BUFFERED response_body_mode: STREAMED response_trailer_mode: SKIP }
            override_message_timeout { seconds: 3 nanos: 500000000 }
            """;
        var bytes = Protoc.Encode($"{ServicePkg}.ProcessingResponse", UpstreamEnvoyApi.IncludeDirs, ServiceFile, text);

        var parsed = ProcessingResponse.Parser.ParseFrom(bytes);

        var expected = new ProcessingResponse
        {
            RequestBody = new BodyResponse
            {
                Response = new CommonResponse
                {
                    Status = CommonResponse.Types.ResponseStatus.ContinueAndReplace,
                    HeaderMutation = new HeaderMutation
                    {
                        SetHeaders =
                        {
                            new HeaderValueOption
                            {
                                Header = new HeaderValue { Key = "x-extproc-cluster", RawValue = ByteString.CopyFromUtf8("openai") },
                                Append = true,
                                AppendAction = HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExists,
                                KeepEmptyValue = true,
                            },
                        },
                        RemoveHeaders = { "authorization" },
                    },
                    BodyMutation = new BodyMutation { ClearBodyFlag = true },
                    Trailers = new HeaderMap { Headers = { new HeaderValue { Key = "grpc-status", RawValue = ByteString.CopyFromUtf8("0") } } },
                    ClearRouteCache = true,
                },
            },
            DynamicMetadata = Struct.Parser.ParseJson("""{"extproc":{"tokens":42}}"""),
            ModeOverride = new ProcessingMode
            {
                RequestBodyMode = ProcessingMode.Types.BodySendMode.Buffered,
                ResponseBodyMode = ProcessingMode.Types.BodySendMode.Streamed,
                ResponseTrailerMode = ProcessingMode.Types.HeaderSendMode.Skip,
            },
            OverrideMessageTimeout = new Duration { Seconds = 3, Nanos = 500_000_000 },
        };
        // Generated Equals also compares unknown fields, so a number or kind mismatch cannot hide.
        Assert.Equal(expected, parsed);
        Assert.Equal(expected.ToByteArray(), bytes);
    }

    [Fact]
    public void UpstreamEncodedRequest_ParsedByOurTypes_EqualsTheSameMessageBuiltWithOurs()
    {
        const string text = """
            request_headers {
              headers {
                headers { key: ":method" raw_value: "POST" }
                headers { key: ":path" raw_value: "/v1/chat/completions" }
                headers { key: "x-bin" raw_value: "\377\000a" }
              }
              end_of_stream: false
            }
            metadata_context { filter_metadata { key: "extproc" value { fields { key: "tenant" value { string_value: "t1" } } } } }
            attributes { key: "envoy.filters.http.ext_proc" value { fields { key: "source.address" value { string_value: "10.0.0.1:5555" } } } }
            observability_mode: true
            """;
        var bytes = Protoc.Encode($"{ServicePkg}.ProcessingRequest", UpstreamEnvoyApi.IncludeDirs, ServiceFile, text);

        var parsed = ProcessingRequest.Parser.ParseFrom(bytes);

        var expected = new ProcessingRequest
        {
            RequestHeaders = new HttpHeaders
            {
                Headers = new HeaderMap
                {
                    Headers =
                    {
                        new HeaderValue { Key = ":method", RawValue = ByteString.CopyFromUtf8("POST") },
                        new HeaderValue { Key = ":path", RawValue = ByteString.CopyFromUtf8("/v1/chat/completions") },
                        new HeaderValue { Key = "x-bin", RawValue = ByteString.CopyFrom(0xFF, 0x00, (byte)'a') },
                    },
                },
            },
            MetadataContext = new Metadata { FilterMetadata = { ["extproc"] = Struct.Parser.ParseJson("""{"tenant":"t1"}""") } },
            Attributes = { ["envoy.filters.http.ext_proc"] = Struct.Parser.ParseJson("""{"source.address":"10.0.0.1:5555"}""") },
            ObservabilityMode = true,
        };
        Assert.Equal(expected, parsed);
        Assert.Equal(expected.ToByteArray(), bytes);
    }

    private static DescriptorIndex OurDescriptorIndex() => new(OurFileProtos());

    private static List<FileDescriptorProto> OurFileProtos()
    {
        // What ships: the descriptors embedded in the generated C# (compiled by Grpc.Tools' protoc from protos/).
        var all = new Dictionary<string, FileDescriptor>(StringComparer.Ordinal);
        var pending = new Stack<FileDescriptor>(s_ourFiles);
        while (pending.Count > 0)
        {
            var file = pending.Pop();
            if (all.TryAdd(file.Name, file))
            {
                foreach (var dependency in file.Dependencies)
                {
                    pending.Push(dependency);
                }
            }
        }

        return [.. all.Values.Select(static f => f.ToProto())];
    }

    private static (HashSet<string> UpstreamScope, HashSet<string> OurTypes) Scope(DescriptorIndex ours)
    {
        var upstream = s_upstream.Value;
        var scope = new HashSet<string>(StringComparer.Ordinal);
        scope.UnionWith(upstream.TypesInFile(ServiceFile));
        scope.UnionWith(upstream.TypesInFile(ProcessingModeFile));
        scope.UnionWith(upstream.TypesInFile(HttpStatusFile));
        scope.UnionWith(upstream.TypesInFile("envoy/config/core/v3/base.proto")
            .Where(static t => s_baseTypes.Any(b => t == b || t.StartsWith(b + ".", StringComparison.Ordinal))));

        var ourTypes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in new[] { ServiceFile, ProcessingModeFile, HttpStatusFile, "envoy/config/core/v3/base.proto" })
        {
            ourTypes.UnionWith(ours.TypesInFile(file));
        }

        return (scope, ourTypes);
    }

    [GeneratedRegex(@"^\s*\d+\s*[:{]", RegexOptions.Multiline)]
    private static partial Regex UnknownFieldRegex();
}

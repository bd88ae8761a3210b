using System.Text.Json;
using Envoy.Service.ExtProc.V3;
using static ExtProc.Tests.Engine.EngineTestKit;
using BodySendMode = Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types.BodySendMode;

namespace ExtProc.Tests.Stages.Parse;

public sealed class RequestParseStageTests
{
    [Fact]
    public async Task RequestBody_ValidOpenAiChat_ModelInDynamicMetadataAndBodyUntouched()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions"));
        await processor.HandleAsync(RequestBody(Utf8(SampleChatBody), endOfStream: true));

        var reply = writer.Responses[1];
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, reply.ResponseCase);
        Assert.Null(reply.RequestBody.Response);
        Assert.Equal("gpt-4o-mini", reply.DynamicMetadata.Fields["extproc"].StructValue.Fields["model"].StringValue);
        Assert.Equal("gpt-4o-mini", processor.Context!.Request!.Model);
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"a","model":"b"}""", "duplicate_key")]
    [InlineData("/v1/messages", """{"model":"a","max_tokens":1e400}""", "invalid_number")]
    [InlineData("/v1beta/models/gemini:generateContent", """{"contents":[],"Contents":[]}""", "ambiguous_field")]
    public async Task RequestBody_PolicyViolation_400InTheCallersDialect(string path, string body, string code)
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders(path));
        await processor.HandleAsync(RequestBody(Utf8(body), endOfStream: true));

        var immediate = writer.Responses[1].ImmediateResponse;
        Assert.Equal(400, (int)immediate.Status.Code);
        using var json = JsonDocument.Parse(immediate.Body.Memory);
        var error = json.RootElement.GetProperty("error");
        var found = error.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String
            ? c.GetString()
            : error.GetProperty("details")[0].GetProperty("reason").GetString();
        Assert.Equal(code, found);
    }

    [Fact]
    public async Task RequestBody_Gemini_ModelComesFromThePath()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"));
        await processor.HandleAsync(RequestBody(Utf8("""{"contents":[{"parts":[{"text":"hi"}]}]}"""), endOfStream: true));

        Assert.Equal("gemini-2.0-flash", processor.Context!.Request!.Model);
        Assert.Equal("gemini-2.0-flash", writer.Responses[1].DynamicMetadata.Fields["extproc"].StructValue.Fields["model"].StringValue);
    }

    [Fact]
    public async Task RequestBody_PartialBodyOnly_413RatherThanForwardUnchecked()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/v1/chat/completions", requestMode: BodySendMode.BufferedPartial));
        await processor.HandleAsync(RequestBody(Utf8("{\"model\":\"a\","), endOfStream: false));

        Assert.Equal(413, (int)writer.Responses[1].ImmediateResponse.Status.Code);
    }

    [Fact]
    public async Task RequestBody_McpToolsCall_MethodAndToolInDynamicMetadata()
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/mcp"));
        await processor.HandleAsync(RequestBody(Utf8("""{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}}"""), endOfStream: true));

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, writer.Responses[1].ResponseCase);
        Assert.Null(processor.Context!.Request);
        var metadata = writer.Responses[1].DynamicMetadata.Fields["extproc"].StructValue.Fields;
        Assert.Equal("tools/call", metadata["mcp_method"].StringValue);
        Assert.Equal("echo", metadata["mcp_target"].StringValue);
    }

    [Theory]
    [InlineData("""[{"jsonrpc":"2.0","id":1,"method":"tools/call"}]""", -32600, "null")] // batch: no single id
    [InlineData("""{"jsonrpc":"2.0","id":"r-9","method":"tools/call","params":{"name":"a","Name":"b"}}""", -32600, "\"r-9\"")]
    [InlineData("""{"jsonrpc":"2.0","id":5,"method":""", -32700, "5")] // the id was read before the JSON broke
    [InlineData("""{"jsonrpc":"2.0",""", -32700, "null")]
    public async Task RequestBody_BadMcpMessage_JsonRpcErrorEchoingTheId(string body, int rpcCode, string idJson)
    {
        var (processor, writer) = Processor(DefaultSnapshot());

        await processor.HandleAsync(RequestHeaders("/mcp"));
        await processor.HandleAsync(RequestBody(Utf8(body), endOfStream: true));

        var immediate = writer.Responses[1].ImmediateResponse;
        Assert.Equal(400, (int)immediate.Status.Code);
        using var json = JsonDocument.Parse(immediate.Body.Memory);
        Assert.Equal("2.0", json.RootElement.GetProperty("jsonrpc").GetString());
        Assert.Equal(rpcCode, json.RootElement.GetProperty("error").GetProperty("code").GetInt32());
        Assert.Equal(idJson, json.RootElement.GetProperty("id").GetRawText());
    }
}

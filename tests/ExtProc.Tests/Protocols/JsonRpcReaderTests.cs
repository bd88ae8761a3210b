using System.Text;
using ExtProc.Protocols.Mcp;

namespace ExtProc.Tests.Protocols;

public sealed class JsonRpcReaderTests
{
    [Fact]
    public void TryRead_ToolsCall_KindIdMethodToolAndArgumentSize()
    {
        var message = Read("""{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Oslo"},"_meta":{"progressToken":1}}}""");

        Assert.Equal(JsonRpcKind.Request, message.Kind);
        Assert.Equal("7", message.IdJson);
        Assert.Equal("tools/call", message.Method);
        Assert.Equal("get_weather", message.Target);
        Assert.Equal("""{"city":"Oslo"}""".Length, message.ArgumentsBytes);
    }

    [Fact]
    public void TryRead_StringIdAndInitialize_IdKeptAsJsonAndVersionRead()
    {
        var message = Read("""{"jsonrpc":"2.0","id":"a\"b","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}""");

        Assert.Equal("\"a\\u0022b\"", message.IdJson);
        Assert.Equal("2025-06-18", message.ProtocolVersion);
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","method":"notifications/initialized"}""", "Notification")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"result":{}}""", "Response")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}""", "Response")]
    public void TryRead_Kinds(string body, string kind) => Assert.Equal(kind, Read(body).Kind.ToString());

    [Theory]
    [InlineData("""[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]""", "invalid_field")] // batch (J12)
    [InlineData("""{"jsonrpc":"1.0","id":1,"method":"x"}""", "invalid_field")]
    [InlineData("""{"id":1,"method":"x"}""", "invalid_field")]
    [InlineData("""{"jsonrpc":"2.0","id":null,"method":"x"}""", "invalid_field")]
    [InlineData("""{"jsonrpc":"2.0","id":1.5,"method":"x"}""", "invalid_field")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":""}""", "invalid_field")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"x","result":{}}""", "invalid_field")]
    [InlineData("""{"jsonrpc":"2.0","id":1}""", "missing_field")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}""", "invalid_field")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list"}""", "duplicate_key")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"tools/list"}""", "ambiguous_field")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","NAME":"rm_rf"}}""", "ambiguous_field")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","ſ":1,"argumentſ":{}}}""", "ambiguous_field")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","nam\u0065":"b"}}""", "duplicate_key")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"x"} {}""", "invalid_json")]
    [InlineData("", "invalid_json")]
    public void TryRead_BadMessage_RefusedWithItsCode(string body, string code)
    {
        var ok = JsonRpcReader.TryRead(Encoding.UTF8.GetBytes(body), 64, new JsonRpcMessage(), out var violation);

        Assert.False(ok);
        Assert.Equal(code, violation.Code);
    }

    private static JsonRpcMessage Read(string body)
    {
        var message = new JsonRpcMessage();
        Assert.True(JsonRpcReader.TryRead(Encoding.UTF8.GetBytes(body), 64, message, out var violation), violation.Message);
        return message;
    }
}

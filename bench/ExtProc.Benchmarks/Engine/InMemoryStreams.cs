using Grpc.Core;

namespace ExtProc.Benchmarks.Engine;

/// <summary>A response stream that drops every message: the cost of the transport is not ours to measure here.</summary>
internal sealed class NullStreamWriter<T> : IServerStreamWriter<T>
    where T : class
{
    public WriteOptions? WriteOptions { get; set; }

    /// <summary>How many messages were written; lets a benchmark check it drove the exchange it meant to.</summary>
    public long Count { get; private set; }

    public Task WriteAsync(T message)
    {
        Count++;
        return Task.CompletedTask;
    }

    public Task WriteAsync(T message, CancellationToken cancellationToken)
    {
        Count++;
        return Task.CompletedTask;
    }
}

/// <summary>
/// A request stream over pre-built messages that completes every read synchronously, so one call of
/// the handler is the engine's work and nothing else. <see cref="Reset"/> rewinds it between calls.
/// </summary>
internal sealed class ArrayStreamReader<T> : IAsyncStreamReader<T>
    where T : class
{
    private static readonly Task<bool> True = Task.FromResult(true);
    private static readonly Task<bool> False = Task.FromResult(false);
    private readonly T[] _messages;
    private int _next;

    public ArrayStreamReader(T[] messages) => _messages = messages;

    public T Current { get; private set; } = null!;

    public void Reset() => _next = 0;

    public Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        if (_next == _messages.Length)
        {
            return False;
        }

        Current = _messages[_next++];
        return True;
    }
}

/// <summary>A server call context with nothing behind it (grpc-dotnet Tester's <c>TestServerCallContext</c>).</summary>
internal sealed class BenchServerCallContext : ServerCallContext
{
    private readonly Metadata _requestHeaders = [];
    private readonly Metadata _responseTrailers = [];
    private readonly Dictionary<object, object> _userState = [];
    private readonly CancellationToken _cancellation;

    public BenchServerCallContext(CancellationToken cancellation = default) => _cancellation = cancellation;

    protected override string MethodCore => "/envoy.service.ext_proc.v3.ExternalProcessor/Process";

    protected override string HostCore => "localhost";

    protected override string PeerCore => "ipv4:127.0.0.1:50000";

    protected override DateTime DeadlineCore => DateTime.MaxValue;

    protected override Metadata RequestHeadersCore => _requestHeaders;

    protected override CancellationToken CancellationTokenCore => _cancellation;

    protected override Metadata ResponseTrailersCore => _responseTrailers;

    protected override Status StatusCore { get; set; }

    protected override WriteOptions? WriteOptionsCore { get; set; }

    protected override AuthContext AuthContextCore { get; } = new(null, []);

    protected override IDictionary<object, object> UserStateCore => _userState;

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
        throw new NotSupportedException();

    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
}

/// <summary>
/// A request stream that parses every message from its wire bytes on <see cref="MoveNext"/>, as
/// grpc-dotnet does from the HTTP/2 stream: the protobuf cost of a hop, paid alike by echo and engine.
/// </summary>
internal sealed class WireStreamReader<T> : IAsyncStreamReader<T>
    where T : class, Google.Protobuf.IMessage<T>
{
    private static readonly Task<bool> True = Task.FromResult(true);
    private static readonly Task<bool> False = Task.FromResult(false);
    private readonly Google.Protobuf.MessageParser<T> _parser;
    private readonly byte[][] _messages;
    private int _next;

    public WireStreamReader(Google.Protobuf.MessageParser<T> parser, T[] messages)
    {
        _parser = parser;
        _messages = Array.ConvertAll(messages, static m => Google.Protobuf.MessageExtensions.ToByteArray(m));
    }

    public T Current { get; private set; } = null!;

    public void Reset() => _next = 0;

    public Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        if (_next == _messages.Length)
        {
            return False;
        }

        Current = _parser.ParseFrom(_messages[_next++]);
        return True;
    }
}

/// <summary>A response stream that serialises every message into a reused buffer, as grpc-dotnet does into the HTTP/2 stream.</summary>
internal sealed class WireStreamWriter<T> : IServerStreamWriter<T>
    where T : class, Google.Protobuf.IMessage<T>
{
    private readonly System.Buffers.ArrayBufferWriter<byte> _buffer = new(64 * 1024);

    public WriteOptions? WriteOptions { get; set; }

    /// <summary>Bytes of the last message written (keeps the serialisation observable).</summary>
    public int LastSize { get; private set; }

    public Task WriteAsync(T message)
    {
        _buffer.ResetWrittenCount();
        Google.Protobuf.MessageExtensions.WriteTo(message, _buffer);
        LastSize = _buffer.WrittenCount;
        return Task.CompletedTask;
    }

    public Task WriteAsync(T message, CancellationToken cancellationToken) => WriteAsync(message);
}

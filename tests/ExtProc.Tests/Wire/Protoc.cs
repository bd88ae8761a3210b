using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using Google.Protobuf.Reflection;

namespace ExtProc.Tests.Wire;

/// <summary>
/// Runs the protoc that the Grpc.Tools NuGet package ships (the same compiler that builds our protos), so
/// upstream and our descriptors come from one compiler.
/// </summary>
internal static partial class Protoc
{
    private static readonly Lazy<(string Exe, string Include)> s_tool = new(Locate);

    public static string ExecutablePath => s_tool.Value.Exe;

    /// <summary>Grpc.Tools' copy of google/protobuf/*.proto.</summary>
    public static string WellKnownIncludeDir => s_tool.Value.Include;

    /// <summary>Compiles files (with their imports) to a descriptor set.</summary>
    public static FileDescriptorSet CompileDescriptorSet(IEnumerable<string> includeDirs, IEnumerable<string> files)
    {
        var output = Path.Combine(Path.GetTempPath(), $"extproc-protoc-{Guid.NewGuid():N}.pb");
        try
        {
            var args = IncludeArgs(includeDirs).Concat(["--include_imports", $"--descriptor_set_out={output}"]).Concat(files);
            Run(args, stdin: null);
            return FileDescriptorSet.Parser.ParseFrom(File.ReadAllBytes(output));
        }
        finally
        {
            File.Delete(output);
        }
    }

    /// <summary>protoc --decode: binary message on stdin, text format out.</summary>
    public static string Decode(string messageType, IEnumerable<string> includeDirs, string file, byte[] message) =>
        Encoding.UTF8.GetString(Run(IncludeArgs(includeDirs).Concat([$"--decode={messageType}", file]), message));

    /// <summary>protoc --encode: text format on stdin, binary message out.</summary>
    public static byte[] Encode(string messageType, IEnumerable<string> includeDirs, string file, string text) =>
        Run(IncludeArgs(includeDirs).Concat([$"--encode={messageType}", file]), Encoding.UTF8.GetBytes(text));

    private static IEnumerable<string> IncludeArgs(IEnumerable<string> includeDirs) =>
        // Well-known types first, so both sides resolve google/protobuf/* to the same files.
        new[] { WellKnownIncludeDir }.Concat(includeDirs).Select(static d => $"--proto_path={d}");

    private static byte[] Run(IEnumerable<string> args, byte[]? stdin)
    {
        var psi = new ProcessStartInfo(ExecutablePath)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"Cannot start {ExecutablePath}.");
        // Read both pipes concurrently; a full pipe would otherwise deadlock protoc.
        var stdoutTask = Task.Run(() =>
        {
            using var buffer = new MemoryStream();
            process.StandardOutput.BaseStream.CopyTo(buffer);
            return buffer.ToArray();
        });
        var stderrTask = process.StandardError.ReadToEndAsync();
        try
        {
            if (stdin is not null)
            {
                process.StandardInput.BaseStream.Write(stdin);
            }

            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // protoc quit before reading its input (e.g. a bad argument); its stderr below says why.
        }
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill();
            throw new TimeoutException($"protoc timed out: {string.Join(' ', psi.ArgumentList)}");
        }

        var stdout = stdoutTask.GetAwaiter().GetResult();
        var stderr = stderrTask.GetAwaiter().GetResult();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"protoc exited with {process.ExitCode}: {string.Join(' ', psi.ArgumentList)}{Environment.NewLine}{stderr}");
        }

        return stdout;
    }

    private static (string Exe, string Include) Locate()
    {
        var version = GrpcToolsVersion();
        var candidates = new List<string>();
        var fromEnv = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (!string.IsNullOrEmpty(fromEnv))
        {
            candidates.Add(fromEnv);
        }

        candidates.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"));

        var platform = PlatformFolder();
        var exeName = OperatingSystem.IsWindows() ? "protoc.exe" : "protoc";
        foreach (var root in candidates)
        {
            var package = Path.Combine(root, "grpc.tools", version);
            var exe = Path.Combine(package, "tools", platform, exeName);
            var include = Path.Combine(package, "build", "native", "include");
            if (File.Exists(exe) && File.Exists(Path.Combine(include, "google", "protobuf", "struct.proto")))
            {
                return (exe, include);
            }
        }

        throw new InvalidOperationException(TestRepo.MissingDependency(
            $"protoc from Grpc.Tools {version} ({platform}) was not found under: {string.Join(", ", candidates)}. " +
            "dotnet restore puts it in the NuGet global packages folder."));
    }

    // The version is pinned once, in Directory.Packages.props; follow it rather than repeating it.
    private static string GrpcToolsVersion()
    {
        var props = File.ReadAllText(TestRepo.PathOf("Directory.Packages.props"));
        var match = GrpcToolsVersionRegex().Match(props);
        return match.Success
            ? match.Groups[1].Value.ToLowerInvariant()
            : throw new InvalidOperationException("Directory.Packages.props pins no Grpc.Tools version.");
    }

    private static string PlatformFolder()
    {
        if (OperatingSystem.IsMacOS())
        {
            return "macosx_universal";
        }

        var arch = RuntimeInformation.OSArchitecture switch
        {
            Architecture.X64 => "x64",
            Architecture.Arm64 => "arm64",
            Architecture.X86 => "x86",
            var other => throw new PlatformNotSupportedException($"Grpc.Tools ships no protoc for {other}."),
        };
        return OperatingSystem.IsWindows() ? $"windows_{arch}" : $"linux_{arch}";
    }

    [GeneratedRegex(@"<PackageVersion\s+Include=""Grpc\.Tools""\s+Version=""([^""]+)""")]
    private static partial Regex GrpcToolsVersionRegex();
}

import Foundation
import LoaCommandLine

exit(LoaCLI.main(CommandLine.arguments))
